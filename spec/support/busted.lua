-- Runs busted inside the imgpipe host, so specs exercise the bindings as
-- linked into the binary (the sanitizer stage of make test):
--   build/asan/imgpipe run spec/support/busted.lua -- [busted options] spec/unit
require "busted.runner" { standalone = false }
