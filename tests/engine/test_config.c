/* config.json helpers: typed getters, defaults, and errors that name the
 * file and the field. */
#include "config.h"
#include "test_util.h"

static const char *json = "{\"in_channels\": 4, \"norm_eps\": 1e-05, "
    "\"mid_block_scale_factor\": 1, \"sample_size\": 64.0, "
    "\"flip_sin_to_cos\": true, \"act_fn\": \"silu\", "
    "\"attention_head_dim\": 8, \"heads_list\": [5, 10, 20, 20], "
    "\"block_out_channels\": [320, 640, 1280, 1280], "
    "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
    "\"class_embed_type\": null, \"bad_list\": [1, \"x\"], "
    "\"frac\": 2.5, \"mixed\": [0.5, 2, -1e-3]}";

static void
expect_error (int ret, const AeError * err, const char *field,
    const char *needle)
{
  CHECK (ret < 0, "field '%s': no error", field);
  CHECK (strstr (err->msg, "test-config.json") != NULL
      && strstr (err->msg, field) != NULL && strstr (err->msg, needle),
      "field '%s': message '%s' lacks file/field/'%s'", field, err->msg,
      needle);
  if (ret < 0)
    printf ("ok   %s\n", err->msg);
}

int
main (void)
{
  AeConfig *cfg = NULL;
  AeError err = { "" };
  int64_t i64, list[8];
  double f, dl[8];
  bool b;
  const char *s, *strs[4];
  int n;

  REQUIRE (ae_config_load_data (&cfg, "test-config.json", json, &err) == 0,
      "%s", err.msg);
  CHECK (ae_config_get_int (cfg, "in_channels", &i64, &err) == 0
      && i64 == 4, "in_channels");
  CHECK (ae_config_get_int (cfg, "sample_size", &i64, &err) == 0
      && i64 == 64, "integral double as int");
  CHECK (ae_config_get_float (cfg, "norm_eps", &f, &err) == 0
      && f == 1e-5, "norm_eps");
  CHECK (ae_config_get_float (cfg, "mid_block_scale_factor", &f, &err) == 0
      && f == 1.0, "int as float");
  CHECK (ae_config_get_bool (cfg, "flip_sin_to_cos", &b, &err) == 0 && b,
      "bool");
  CHECK (ae_config_get_string (cfg, "act_fn", &s, &err) == 0
      && strcmp (s, "silu") == 0, "string");
  CHECK (ae_config_get_int_list (cfg, "block_out_channels", list, 8, &n,
          false, &err) == 0 && n == 4 && list[3] == 1280, "int list");
  CHECK (ae_config_get_int_list (cfg, "attention_head_dim", list, 8, &n,
          true, &err) == 0 && n == 1 && list[0] == 8, "scalar as list");
  CHECK (ae_config_get_int_list (cfg, "heads_list", list, 8, &n, true,
          &err) == 0 && n == 4 && list[1] == 10, "list with scalar_ok");
  CHECK (ae_config_get_float_list (cfg, "mixed", dl, 8, &n, &err) == 0
      && n == 3 && dl[0] == 0.5 && dl[1] == 2.0 && dl[2] == -1e-3,
      "float list");
  CHECK (ae_config_get_string_list (cfg, "down_block_types", strs, 4, &n,
          &err) == 0 && n == 2 && strcmp (strs[1], "DownBlock2D") == 0,
      "string list");
  CHECK (!ae_config_has (cfg, "class_embed_type")
      && ae_config_has (cfg, "act_fn"), "null counts as absent");
  CHECK (ae_config_get_int_or (cfg, "layers_per_block", 2, &i64, &err) == 0
      && i64 == 2, "int default");
  CHECK (ae_config_get_string_or (cfg, "class_embed_type", "none", &s,
          &err) == 0 && strcmp (s, "none") == 0, "null uses default");
  CHECK (ae_config_get_float_or (cfg, "dropout", 0.0, &f, &err) == 0
      && f == 0.0, "float default");
  CHECK (ae_config_get_bool_or (cfg, "center_input_sample", false, &b,
          &err) == 0 && !b, "bool default");

  expect_error (ae_config_get_int (cfg, "layers_per_block", &i64, &err),
      &err, "layers_per_block", "missing");
  expect_error (ae_config_get_int (cfg, "act_fn", &i64, &err), &err,
      "act_fn", "expected an integer, found string");
  expect_error (ae_config_get_int (cfg, "frac", &i64, &err), &err, "frac",
      "expected an integer");
  expect_error (ae_config_get_int_or (cfg, "act_fn", 1, &i64, &err), &err,
      "act_fn", "expected an integer");
  expect_error (ae_config_get_float (cfg, "act_fn", &f, &err), &err,
      "act_fn", "expected a number");
  expect_error (ae_config_get_bool (cfg, "in_channels", &b, &err), &err,
      "in_channels", "expected a boolean, found integer");
  expect_error (ae_config_get_string (cfg, "norm_eps", &s, &err), &err,
      "norm_eps", "expected a string, found number");
  expect_error (ae_config_get_int_list (cfg, "attention_head_dim", list, 8,
          &n, false, &err), &err, "attention_head_dim", "list of integers");
  expect_error (ae_config_get_int_list (cfg, "bad_list", list, 8, &n, false,
          &err), &err, "bad_list", "[1]: expected an integer, found string");
  expect_error (ae_config_get_int_list (cfg, "block_out_channels", list, 2,
          &n, false, &err), &err, "block_out_channels", "at most 2");
  expect_error (ae_config_get_string_list (cfg, "heads_list", strs, 4, &n,
          &err), &err, "heads_list", "expected a string");
  expect_error (ae_config_get_float_list (cfg, "bad_list", dl, 8, &n, &err),
      &err, "bad_list", "[1]: expected a number, found string");
  expect_error (ae_config_get_float_list (cfg, "frac", dl, 8, &n, &err),
      &err, "frac", "expected a list of numbers, found number");
  ae_config_free (cfg);

  CHECK (ae_config_load_data (&cfg, "test-config.json", "{\"a\": ", &err) < 0
      && cfg == NULL && strstr (err.msg, "test-config.json"),
      "malformed JSON: %s", err.msg);
  CHECK (ae_config_load_data (&cfg, "test-config.json", "[1]", &err) < 0
      && strstr (err.msg, "not a JSON object"), "array top level");
  CHECK (ae_config_load (&cfg, "/nonexistent/config.json", &err) < 0
      && strstr (err.msg, "/nonexistent/config.json"), "missing file: %s",
      err.msg);
  printf ("ok   %s\n", err.msg);

  {
    const char *shared = g_getenv ("AVATAR_SHARED_DIR");
    char *path = shared ? g_build_filename (shared, "golden",
        "unet_sd15_tiny", "model", "config.json", NULL) : NULL;
    if (path && g_file_test (path, G_FILE_TEST_EXISTS)) {
      CHECK (ae_config_load (&cfg, path, &err) == 0, "%s", err.msg);
      CHECK (cfg && ae_config_get_int_list (cfg, "block_out_channels", list,
              8, &n, false, &err) == 0 && n == 3 && list[2] == 64,
          "golden unet config");
      ae_config_free (cfg);
    }
    g_free (path);
  }
  return test_finish ("test_config");
}
