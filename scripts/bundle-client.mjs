// Bundles the compiled client (dist/bin/client.js, from tsc) into dist/client/: one small entry
// plus chunks split at the CLI's lazy imports, so a call reads a few files instead of ~400 modules
// (start-up is most of a CLI call's time). Native modules stay external. Run by `npm run build`.
import fs from 'node:fs';
import { build } from 'esbuild';

// Chunk names carry content hashes: clear the old ones.
fs.rmSync('dist/client', { recursive: true, force: true });
await build({
  entryPoints: ['dist/bin/client.js'],
  outdir: 'dist/client',
  entryNames: '[name]',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['better-sqlite3', 'argon2'],
  // The bundled CommonJS packages (grpc-js, winston ...) call require().
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
