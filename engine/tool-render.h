/* `avatar-engine render`: pose file + reference -> one PNG per pose frame
 * through AeAvatarStream and AeLatentBlender (tool-render.c,
 * docs/avatar-pipeline.md). */
#ifndef AE_TOOL_RENDER_H
#define AE_TOOL_RENDER_H

/* Monotonic seconds, for the timings the avatar-engine tool prints. */
#define ae_seconds() (g_get_monotonic_time () * 1e-6)

#ifdef __cplusplus
extern "C" {
#endif

/* argv[1] is "render"; returns the process exit status (0, 1 on a failed
 * render, 2 on bad usage). */
int ae_tool_render (int argc, char **argv);

/* The usage line of the render subcommand. */
#define AE_TOOL_RENDER_USAGE \
  "  avatar-engine render --model DIR --poses FILE --out DIR " \
  "[--reference PNG] [--reference-pose JSON]\n" \
  "      [--frames N] [--size WxH] [--steps N] [--scheduler ddim|euler|lcm] " \
  "[--guidance G] [--pose-scale S]\n" \
  "      [--window W] [--overlap O] [--fusion progressive|uniform] " \
  "[--lookahead L] [--seed S] [--threads T]\n" \
  "      [--noise-correlation R (0..1: 1 = the same initial noise for " \
  "every frame, 0 = independent)]\n" \
  "      [--strength S (0..1: img2img strength from the reference; 1 = " \
  "from noise)]\n" \
  "      [--no-reference-attention] [--no-hand-tokens] " \
  "[--temporal-attention] [--no-reference-init]\n" \
  "      [--no-reference-concat] [--save-latents FILE.safetensors]\n" \
  "      [--device cpu|vulkan|auto]\n"

#ifdef __cplusplus
}
#endif
#endif /* AE_TOOL_RENDER_H */
