import type { TsProtoServiceDefinition } from 'nice-grpc';
import type { CallContext, ServerMiddlewareCall } from 'nice-grpc-common';
import { AppError } from '../core/errors.js';

// grpc-js decodes a request before any interceptor or middleware sees it, and answers bytes that do
// not decode with INTERNAL "Error deserializing request". A caller's bad bytes are the caller's
// mistake, so the decoder of every method is wrapped: bytes that do not decode become a marker
// request, which the middleware below refuses with INVALID_ARGUMENT MALFORMED_REQUEST.

const MALFORMED = Symbol('malformed request');
const MARKER: Readonly<Record<typeof MALFORMED, true>> = Object.freeze({ [MALFORMED]: true as const });

/** The same service definition with each request decoder answering undecodable bytes with the marker. */
export function guardDecode<D extends TsProtoServiceDefinition>(definition: D): D {
  const methods = Object.fromEntries(
    Object.entries(definition.methods).map(([key, method]) => {
      const decode = method.requestType.decode.bind(method.requestType);
      const requestType = {
        ...method.requestType,
        decode: (input: Uint8Array): unknown => {
          try {
            return decode(input);
          } catch {
            return MARKER;
          }
        },
      };
      return [key, { ...method, requestType }];
    }),
  );
  return { ...definition, methods };
}

/** Whether a decoded request is the marker of bytes that did not decode (a streamed request's handler checks each). */
export function isMalformed(request: unknown): boolean {
  return typeof request === 'object' && request !== null && MALFORMED in request;
}

/** Refuses a request whose bytes did not decode (see guardDecode). */
export async function* malformedRequestMiddleware<Req, Res>(call: ServerMiddlewareCall<Req, Res>, context: CallContext) {
  if (isMalformed(call.request)) {
    throw new AppError('MALFORMED_REQUEST', `the request is not a valid ${call.method.path} request message`);
  }
  return yield* call.next(call.request, context);
}
