-- Watermark presets, by the name a URL gives in wm_NAME. Each is the
-- watermark table of a rendition step (imgpipe.renditions): text or image,
-- gravity, margin, opacity, size, colour, font. Edit, add, remove: a name
-- not listed here is a 400.
return {
  logo = { text = "imgpipe", gravity = "south-east", margin = 12, opacity = 0.7, size = 20 },
  proof = { text = "PROOF", gravity = "centre", opacity = 0.35, size = 72, colour = { 255, 255, 255 } },
}
