-- DIT's Thumbor form, its custom (rewrite) form and the query-parameter
-- edits: each path read by lua/imgpipe/transform/thumbor.lua (after
-- lua/imgpipe/transform/rewrite.lua for the custom form), turned into DIT edits,
-- and run as the default form's are (support.dit_chain), against the
-- sharp calls for the same edits. The filters' meanings are Thumbor's as
-- lua/imgpipe/transform/thumbor.lua documents them.
local dit_chain = require "support.dit_chain"

local internals = require "support.internals"
local thumbor = internals.require "imgpipe.transform.thumbor"
local rewrite = internals.require "imgpipe.transform.rewrite"
local dit_edits = internals.require "imgpipe.transform.dit_edits"

local cases = {}

local SIZES = { card = { 320, 200 }, photo = { 480, 320 }, alpha = { 320, 200 }, small = { 64, 40 } }

-- The edits list and extras of a path (with query parameters), or nil, why.
local function read(path, query)
  local req, why = thumbor.parse(path)
  if not req then return nil, why end
  local list, extra = thumbor.to_edits(req)
  local folded, err = dit_edits.query_edits(query, list)
  if not folded then return nil, err end
  return folded, extra
end

local function sharp_side(list, extra, source)
  return dit_chain.sharp_side(list, extra, SIZES[source])
end

local function case(form, path, source, query, opts)
  opts = opts or {}
  local shown = path .. (query and ("?" .. opts.query_text) or "")
  local list, extra = read(opts.rewritten or path, query)
  assert(list, shown .. ": " .. tostring(extra))
  local chain, fmt, options = sharp_side(list, extra, source)
  cases[#cases + 1] = {
    edit = form, name = form .. ": " .. shown, source = source, sharp = chain, format = fmt, options = options,
    imgpipe = function(bytes)
      local l, e = read(opts.rewritten or path, query)
      if not l then return nil, e end
      return dit_chain.run(bytes, l, "png", e)
    end,
  }
end

local function refused(form, path, names, query)
  cases[#cases + 1] = {
    edit = form, name = form .. " refuses " .. path, source = "card", sharp = {},
    expect = { refused = "a 400 naming " .. names, names = names },
    imgpipe = function(bytes)
      local l, e = read(path, query)
      if not l then return nil, e end
      return dit_chain.run(bytes, l, "png", e)
    end,
  }
end

-- Thumbor ---------------------------------------------------------------------
case("thumbor", "/fit-in/200x200/a.png", "photo")
case("thumbor", "/200x200/a.png", "photo")
case("thumbor", "/0x100/a.png", "photo")
case("thumbor", "/150x0/a.png", "card")
case("thumbor", "/-200x100/a.png", "card")
case("thumbor", "/200x-100/a.png", "card")
case("thumbor", "/10x20:210x170/a.png", "photo")
case("thumbor", "/10x20:210x170/fit-in/100x100/a.png", "photo")
case("thumbor", "/fit-in/800x1000/a.png", "small")
case("thumbor", "/fit-in/800x1000/filters:no_upscale()/a.png", "small")
case("thumbor", "/fit-in/300x300/filters:fill(ff0000)/a.png", "card")
case("thumbor", "/fit-in/300x300/filters:fill(red)/a.png", "photo")
case("thumbor", "/300x300/filters:stretch()/a.png", "photo")
case("thumbor", "/filters:blur(7)/a.png", "photo")
case("thumbor", "/filters:blur(2,4)/a.png", "card")
case("thumbor", "/filters:convolution(1;2;1;2;4;2;1;2;1,3,true)/a.png", "photo")
case("thumbor", "/filters:convolution(-1;-1;-1;-1;8;-1;-1;-1;-1,3,false)/a.png", "photo")
case("thumbor", "/filters:equalize()/a.png", "photo")
case("thumbor", "/filters:grayscale()/a.png", "card")
case("thumbor", "/filters:rotate(90)/a.png", "card")
case("thumbor", "/filters:rotate(30)/a.png", "photo")
case("thumbor", "/fit-in/200x200/filters:rotate(180):grayscale()/a.png", "photo")
case("thumbor", "/filters:background_color(00ff00)/a.png", "alpha")
case("thumbor", "/filters:format(webp):quality(50)/a.png", "photo")
case("thumbor", "/filters:format(jpeg)/a.png", "card")
case("thumbor", "/filters:quality(40):format(jpeg)/a.png", "photo")
case("thumbor", "/filters:autojpg()/a.png", "photo")
case("thumbor", "/filters:rgb(20,-20,40)/a.png", "photo")
case("thumbor", "/filters:sharpen(2,1.0,true)/a.png", "photo")
case("thumbor", "/filters:proportion(0.5)/a.png", "photo")
case("thumbor", "/fit-in/300x300/filters:proportion(0.5)/a.png", "photo")
case("thumbor", "/filters:strip_exif():strip_icc()/a.png", "card")
case("thumbor", "/fit-in/400x400/filters:upscale()/a.png", "small")
case("thumbor", "/filters:format(avif)/a.png", "photo")
refused("thumbor", "/filters:sepia()/a.png", "filter 'sepia' is not supported")
refused("thumbor", "/filters:blur()/a.png", "filter 'blur'")
refused("thumbor", "/filters:quality(300)/a.png", "filter 'quality'")
refused("thumbor", "/filters:format(tiff)/a.png", "'tiff' output is not supported")
refused("thumbor", "/fit-in/a.png", "fit-in needs a size")

-- query parameters, on the Thumbor form and on a bare key --------------------------
local function q(text)
  local t = {}
  for k, v in text:gmatch "([^&=]+)=([^&]*)" do t[k] = v end
  return t, text
end
local function query_case(path, source, text)
  local query, shown = q(text)
  case("query", path, source, query, { query_text = shown })
end
query_case("/a.png", "photo", "width=200")
query_case("/a.png", "photo", "width=200&height=200")
query_case("/a.png", "photo", "width=200&height=200&fit=inside")
query_case("/a.png", "card", "width=100&height=100&fit=fill")
query_case("/a.png", "photo", "format=webp")
query_case("/a.png", "card", "rotate=90")
query_case("/a.png", "card", "flip=true&flop=true")
query_case("/a.png", "photo", "grayscale=true")
query_case("/a.png", "photo", "greyscale=True")
query_case("/fit-in/300x300/a.png", "photo", "width=100")
query_case("/filters:grayscale()/a.png", "photo", "format=jpeg&width=150")
refused("query", "/a.png", "query parameter width", (q "width=-3"))
refused("query", "/a.png", "query parameter rotate", (q "rotate=400"))
refused("query", "/a.png", "query parameter flip", (q "flip=yes"))
refused("query", "/a.png", "fit must be one of", (q "width=100&fit=cover,f_avif,q_1"))

-- the custom form: the environment's rewrite, then the Thumbor form ------------------
local function custom(pattern, substitution, path, source)
  local re = assert(rewrite.compile(pattern))
  local rewritten = assert(rewrite.rewrite(re, path, substitution))
  case("custom", path, source, nil, { rewritten = rewritten })
  cases[#cases].name = cases[#cases].name .. " (" .. pattern .. " -> " .. substitution .. ")"
end
custom("/^\\/thumb\\/(.*)$/", "/fit-in/120x120/$1", "/thumb/a.png", "photo")
custom("/^\\/(\\d+)\\/(\\d+)\\/(.*)$/", "/fit-in/$1x$2/$3", "/150/90/a.png", "card")
custom("/(filters-)/gm", "filters:", "/filters-grayscale()/a.png", "photo")
custom("/^\\/gray\\/(.*)$/", "/filters:grayscale():blur(2)/$1", "/gray/a.png", "photo")

return cases
