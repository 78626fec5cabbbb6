#!/bin/sh
# Installs every Debian 12 package gst-avatar needs to build, test, train and run its demos.
set -e
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential meson ninja-build pkg-config clang clang-format-14 \
  libglib2.0-dev libjson-glib-dev libpng-dev libopenblas-dev \
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav \
  libgstrtspserver-1.0-dev ffmpeg \
  libvulkan-dev mesa-vulkan-drivers glslc vulkan-tools vulkan-validationlayers \
  python3-torch python3-numpy python3-pil
