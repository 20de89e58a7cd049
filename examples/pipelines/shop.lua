-- A shop's photos: a card in WebP, sharpened by a step of its own; too-small
-- images refused with a code of the shop's; the shop's attributes and a
-- placeholder recorded with the image (README, "Writing your own pipeline").
local pipeline = require "imgpipe.pipeline"

return pipeline.process {
  renditions = {
    { name = "card", width = 320, height = 320, format = "webp",
      steps = { function(img, job) job.stepped = true return img:sharpen() end } },
  },
  check = function(job)
    if job.width < 200 or job.height < 200 then
      return pipeline.reject("TooSmall", string.format("%dx%d is under 200x200", job.width, job.height))
    end
  end,
  record = function(job)
    return { shop = "north", portrait = job.height > job.width, stepped = job.stepped == true }
  end,
  placeholder = { size = 16 },
}
