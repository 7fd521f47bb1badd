// schema.js: a registry of message and service descriptors from a binary
// google.protobuf.FileDescriptorSet (what the gateway's console serves at
// /console/api/descriptors, and the browser tests' origin serves), so that
// a page calls any method with dynamic messages: no generated code.
import { createFileRegistry, fromBinary, toJson } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { ConnectError } from '@connectrpc/connect';

export async function loadRegistry(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const set = fromBinary(FileDescriptorSetSchema, new Uint8Array(await res.arrayBuffer()));
  return createFileRegistry(set);
}

// errorJSON is a ConnectError as plain JSON: code (gRPC's number), the
// message, the details decoded by registry (type and JSON), and the
// metadata (headers and trailers) by name.
export function errorJSON(err, registry) {
  const e = ConnectError.from(err);
  const details = e.findDetails(registry).map((m) => ({ type: m.$typeName, value: toJson(registry.getMessage(m.$typeName), m, { registry }) }));
  return { code: e.code, message: e.rawMessage, details, metadata: headersJSON(e.metadata) };
}

export function headersJSON(h) {
  const o = {};
  h.forEach((v, k) => { o[k] = v; });
  return o;
}
