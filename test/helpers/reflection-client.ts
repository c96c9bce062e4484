import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { createChannel, createClient } from 'nice-grpc';
import { ServerReflectionService } from 'nice-grpc-server-reflection';
import pb from 'nice-grpc-server-reflection/lib/proto/grpc/reflection/v1/reflection_pb.js';
import { channelCredentials, type TlsMaterial } from '../../src/tls/credentials.js';

// A small client of grpc.reflection.v1 (what grpcurl speaks) over mutual TLS: asks a node to list
// its services, then for the file defining each, as grpcurl's `list` and `describe` do.

export interface Reflected {
  /** The service names the node lists. */
  readonly services: string[];
  /** Per listed service, the names of the RPCs its file descriptor defines. */
  readonly methods: Record<string, string[]>;
}

export async function reflect(address: string, tls: TlsMaterial, deadlineMs: number): Promise<Reflected> {
  const channel = createChannel(address, channelCredentials(tls));
  try {
    const client = createClient(ServerReflectionService, channel);
    const ask = async (request: pb.ServerReflectionRequest) => {
      const answers: pb.ServerReflectionResponse[] = [];
      for await (const answer of client.serverReflectionInfo(one(request), { signal: AbortSignal.timeout(deadlineMs) })) {
        answers.push(answer);
      }
      const answer = answers[0];
      if (answers.length !== 1 || !answer) throw new Error(`expected one reflection answer, got ${answers.length}`);
      const error = answer.getErrorResponse();
      if (error) throw new Error(`reflection error ${error.getErrorCode()}: ${error.getErrorMessage()}`);
      return answer;
    };
    const listed = await ask(new pb.ServerReflectionRequest().setListServices('*'));
    const services = (listed.getListServicesResponse()?.getServiceList() ?? []).map((s) => s.getName());
    const methods: Record<string, string[]> = {};
    for (const service of services) {
      const files = (await ask(new pb.ServerReflectionRequest().setFileContainingSymbol(service)))
        .getFileDescriptorResponse()?.getFileDescriptorProtoList_asU8() ?? [];
      methods[service] = files.flatMap((bytes) => {
        const file = fromBinary(FileDescriptorProtoSchema, bytes);
        return file.service
          .filter((s) => `${file.package}.${s.name}` === service)
          .flatMap((s) => s.method.map((m) => m.name));
      });
    }
    return { services, methods };
  } finally {
    channel.close();
  }
}

async function* one<T>(request: T): AsyncIterable<T> {
  yield request;
}
