#!/usr/bin/env node
'use strict';
// The client's entry (dist/client/client.cjs): runs the bundled client (bundle.cjs beside it) with
// a V8 code cache. Compiling the ~2 MB bundle is a large share of one CLI call, and Node 20 has no
// compile cache of its own for modules. Copied into dist/client/ by scripts/bundle-client.mjs.
//
// The cache lives beside the bundle (same owner and trust as the code itself). V8 checks only the
// source's length, so the file is named after the bundle's size and mtime, and a rebuild (which
// empties dist/client/) never meets an old cache. It is written once, by the first call that finds
// none or finds it rejected (another Node version), through a rename so concurrent calls never read
// half a file; where the folder is not writable every call simply compiles.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { createRequire } = require('node:module');

const bundle = path.join(__dirname, 'bundle.cjs');
const stat = fs.statSync(bundle);
const cacheFile = `${bundle}.${stat.size}-${Math.trunc(stat.mtimeMs)}.v8cache`;
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  cachedData = undefined;
}
// The bundle keeps bin/client.ts's '#!' line, legal only at a script's very start: comment it out.
const source = fs.readFileSync(bundle, 'utf8').replace(/^#!/, '//');
const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
const script = new vm.Script(wrapped, { filename: bundle, cachedData });
if (cachedData === undefined || script.cachedDataRejected) {
  // At exit, so that the cache also holds the functions this call compiled lazily.
  process.once('exit', () => {
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  });
}
const mod = { exports: {}, filename: bundle, id: bundle, loaded: false };
script.runInThisContext()(mod.exports, createRequire(bundle), mod, bundle, __dirname);
