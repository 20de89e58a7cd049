-- The imgpipe Lua package: which of its modules are public.
--
-- Every file under lua/imgpipe/ is a module of the package, named after its
-- path (lua/imgpipe/pipeline/process.lua is imgpipe.pipeline.process), and
-- is embedded in the imgpipe binary and in imgpipe.so by lua/embed.lua. The
-- modules listed here are the public ones: pipelines, examples and users
-- require them by name. Every other module is private to the package: the
-- package's own modules require it, a require from anywhere else is refused
-- (docs/package.md).
return {
  public = {
    "imgpipe.pipeline",
    "imgpipe.renditions",
    "imgpipe.signing",
    "imgpipe.testing",
  },
}
