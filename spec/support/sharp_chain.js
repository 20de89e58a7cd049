// The oracle side of the conformance spec (spec/conformance/dit_spec.lua):
// runs sharp call chains, all cases in one Node.js process.
//
//   node spec/support/sharp_chain.js CASES.json
//
// CASES.json is an array of {id, input, output, chain, format, options}:
// sharp(input) then, for each [method, ...args] of chain, image[method](...args),
// then toFormat(format, options) written to output. Prints one JSON array:
// {id, ok, error?, format, width, height, channels} per case, and the time
// all the cases took (ms) to stderr.
'use strict';

const fs = require('fs');
const path = require('path');

function loadSharp() {
  const here = path.join(__dirname, '..', 'conformance', 'node_modules', 'sharp');
  return require(here);
}

// JSON has no bytes. Anywhere in the arguments:
//   {"$utf8": "<svg ...>"}   that text as a Buffer (an SVG overlay, say)
//   {"$file": "path"}        the file's bytes
//   {"$sharp": {"input": ..., "chain": [...]}}   the PNG bytes of that
//                            chain run on that input (an overlay prepared
//                            as DIT prepares it)
async function revive(sharp, value) {
  if (Array.isArray(value)) return Promise.all(value.map((v) => revive(sharp, v)));
  if (value && typeof value === 'object') {
    if (typeof value.$utf8 === 'string') return Buffer.from(value.$utf8, 'utf8');
    if (typeof value.$file === 'string') return fs.readFileSync(value.$file);
    if (value.$sharp) return (await chain(sharp, value.$sharp.input, {}, value.$sharp.chain)).png().toBuffer();
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = await revive(sharp, v);
    return out;
  }
  return value;
}

async function chain(sharp, input, inputOptions, steps) {
  let image = sharp(await revive(sharp, input), inputOptions || {});
  for (const step of Array.isArray(steps) ? steps : []) {
    const [method, ...args] = step;
    if (typeof image[method] !== 'function') throw new Error('sharp has no method ' + method);
    image = image[method](...(await revive(sharp, args)));
  }
  return image;
}

async function runCase(sharp, c) {
  let image = await chain(sharp, c.input, c.input_options, c.chain);
  if (c.format) image = image.toFormat(c.format, c.options || {});
  const info = await image.toFile(c.output);
  return { format: info.format, width: info.width, height: info.height, channels: info.channels };
}

async function main() {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: sharp_chain.js CASES.json\n');
    process.exit(2);
  }
  const sharp = loadSharp();
  sharp.cache(false);
  const cases = JSON.parse(fs.readFileSync(file, 'utf8'));
  const started = process.hrtime.bigint();
  const results = [];
  for (const c of cases) {
    try {
      results.push(Object.assign({ id: c.id, ok: true }, await runCase(sharp, c)));
    } catch (err) {
      results.push({ id: c.id, ok: false, error: String(err && err.message ? err.message : err) });
    }
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stdout.write(JSON.stringify(results));
  process.stderr.write('sharp ' + sharp.versions.sharp + ', libvips ' + sharp.versions.vips + ': ' +
    cases.length + ' cases in ' + ms.toFixed(0) + ' ms\n');
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
