import fs from 'node:fs';
import type { Server } from 'nice-grpc';
import { ServerReflection, ServerReflectionService } from 'nice-grpc-server-reflection';

// gRPC server reflection (grpc.reflection.v1), so grpcurl, grpcui and Postman can list and call a
// node's services without the .proto files. The descriptor set is written by `npm run gen`
// (`buf build`) next to the generated code, and copied into dist/ by the build; it is read once at start.

const DESCRIPTOR_SET = new URL('../gen/descriptors.binpb', import.meta.url);

let descriptors: Uint8Array | undefined;

/** The descriptor set of every proto of the project (with imports), read once. */
function descriptorSet(): Uint8Array {
  descriptors ??= fs.readFileSync(DESCRIPTOR_SET);
  return descriptors;
}

/**
 * Adds the reflection service to `server`, listing `serviceNames` (full names of our services; health
 * and reflection have no descriptors in our set, so they are not listed). Like
 * health it is admitted for any certificate of our CA: it reveals only the schema (published with
 * the package anyway); every call of a listed service is still checked by that service's own admission.
 */
export function addReflection(server: Server, serviceNames: readonly string[]): void {
  server.add(ServerReflectionService, ServerReflection(descriptorSet(), serviceNames));
}
