-- Named presets: a rendition declaration (imgpipe.renditions) under a name,
-- shared by the processing pipelines ({preset = "card"} in a rendition
-- list) and the transform (p_card in a /t/ URL's options, under whatever
-- else the URL says). Checked when a pipeline loads: a bad preset is a load
-- error naming it and its field. docs/transform.md, docs/package.md.
return {
  card = { width = 400, height = 300, fit = "cover", format = "webp", quality = 80 },
  thumb = { width = 160, height = 160, fit = "cover", gravity = "attention", format = "webp" },
}
