// grpcwebtext.js: gRPC-Web text mode (application/grpc-web-text, base64
// bodies) for connect-web's gRPC-Web transport, which speaks the binary
// mode only. textFetch is a fetch for createGrpcWebTransport's `fetch`
// option: it sends the binary request body base64-encoded as
// application/grpc-web-text+proto and decodes the answer's base64 as it
// arrives (every complete 4-character group at once, so streamed messages
// are not held back; a group with padding ends a chunk, and the next chunk
// starts a new group), giving the transport the binary frames it expects.
export async function textFetch(input, init = {}) {
  const headers = new Headers(init.headers);
  const ct = headers.get('content-type') || '';
  if (!ct.startsWith('application/grpc-web')) {
    return fetch(input, init);
  }
  headers.set('content-type', 'application/grpc-web-text+proto');
  headers.set('accept', 'application/grpc-web-text');
  const body = init.body ? toBase64(new Uint8Array(init.body)) : undefined;
  const res = await fetch(input, { ...init, headers, body });
  const rct = res.headers.get('content-type') || '';
  if (!rct.startsWith('application/grpc-web-text') || !res.body) {
    return res;
  }
  const out = new Headers(res.headers);
  out.set('content-type', 'application/grpc-web+proto');
  return new Response(res.body.pipeThrough(base64Decoder()), { status: res.status, statusText: res.statusText, headers: out });
}

function toBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

// base64Decoder is a TransformStream of base64 text bytes to the bytes
// they encode, decoding each complete 4-character group as it arrives.
function base64Decoder() {
  let pending = '';
  const text = new TextDecoder();
  const decode = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  return new TransformStream({
    transform(chunk, controller) {
      pending += text.decode(chunk, { stream: true }).replace(/\s+/g, '');
      const whole = pending.length - (pending.length % 4);
      if (whole === 0) return;
      const groups = pending.slice(0, whole);
      pending = pending.slice(whole);
      // atob stops at padding: decode padded groups one by one.
      let start = 0;
      for (let i = 0; i < groups.length; i += 4) {
        if (groups[i + 3] === '=') {
          controller.enqueue(decode(groups.slice(start, i + 4)));
          start = i + 4;
        }
      }
      if (start < groups.length) controller.enqueue(decode(groups.slice(start)));
    },
    flush(controller) {
      if (pending.length > 0) controller.error(new Error(`grpc-web-text: ${pending.length} base64 characters left over`));
    },
  });
}
