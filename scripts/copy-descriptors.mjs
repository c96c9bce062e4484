// The descriptor set `npm run gen` writes for gRPC server reflection (src/gen/descriptors.binpb) is
// not TypeScript, so tsc does not carry it into dist/: copy it next to the compiled src/gen/.
// Run by `npm run build`.
import fs from 'node:fs';

fs.mkdirSync('dist/src/gen', { recursive: true });
fs.copyFileSync('src/gen/descriptors.binpb', 'dist/src/gen/descriptors.binpb');
