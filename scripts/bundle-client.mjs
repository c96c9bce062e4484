// Bundles the compiled client (dist/bin/client.js, from tsc) into ONE CommonJS file,
// dist/client/bundle.cjs, started by dist/client/client.cjs (scripts/client-loader.cjs) with a V8
// code cache: start-up is most of a CLI call, and one script with a cache beats ~400 modules (or
// a few chunks) compiled afresh on every call. Native modules stay external. Run by `npm run build`.
import fs from 'node:fs';
import { build } from 'esbuild';

// A rebuild must never meet the previous bundle's code cache: clear the folder.
fs.rmSync('dist/client', { recursive: true, force: true });
await build({
  entryPoints: ['dist/bin/client.js'],
  outfile: 'dist/client/bundle.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['better-sqlite3', 'argon2'],
  // Identifiers stay readable in an internal error's stack; whitespace and syntax shrink the file.
  minifyWhitespace: true,
  minifySyntax: true,
  // The few import.meta.url uses (files beside the code) get the bundle's own URL.
  define: { 'import.meta.url': '__bundleUrl' },
  banner: { js: "const __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
fs.copyFileSync('scripts/client-loader.cjs', 'dist/client/client.cjs');
fs.chmodSync('dist/client/client.cjs', 0o755);
