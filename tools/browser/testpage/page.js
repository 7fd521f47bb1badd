// The browser tests' page: served from an origin other than the gateway's,
// it calls the gateway with connect-web's gRPC-Web client (binary, or text
// through textFetch), fetch (REST) and EventSource (SSE), and gives the Go
// test what it saw as JSON: window.edgegate.<case>(args), run by driver.mjs.
import { create, fromJson, toJson } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { textFetch } from '../src/grpcwebtext.js';
import { loadRegistry, errorJSON, headersJSON } from '../src/schema.js';

const registry = await loadRegistry('/descriptors.binpb');

function client(service, base, text) {
  const transport = createGrpcWebTransport({ baseUrl: base, useBinaryFormat: true, fetch: text ? textFetch : undefined });
  return { svc: registry.getService(service), c: createClient(registry.getService(service), transport) };
}

function request(svc, method, json) {
  const m = svc.methods.find((x) => x.name === method);
  return { m, req: fromJson(m.input, json, { registry }) };
}

async function unary({ base, text, service = 'edgegate.testing.v1.EchoService', method = 'Unary', json = {}, headers = {} }) {
  const { svc, c } = client(service, base, text);
  const { m, req } = request(svc, method, json);
  const out = { headers: {}, trailers: {} };
  try {
    const res = await c[m.localName](req, { headers, onHeader: (h) => { out.headers = headersJSON(h); }, onTrailer: (t) => { out.trailers = headersJSON(t); } });
    out.message = toJson(m.output, res);
  } catch (err) {
    out.error = errorJSON(err, registry);
  }
  return out;
}

// stream reads a server stream; after each message it asks ack (a URL of
// the page's origin, whose server then lets the upstream send the next
// message) and notes when the message arrived.
async function stream({ base, text, json = {}, ack, headers = {} }) {
  const { svc, c } = client('edgegate.testing.v1.EchoService', base, text);
  const { m, req } = request(svc, 'ServerStream', json);
  const out = { messages: [], arrivals: [] };
  try {
    for await (const res of c[m.localName](req, { headers })) {
      out.arrivals.push(performance.now());
      out.messages.push(toJson(m.output, res));
      if (ack) await fetch(ack);
    }
  } catch (err) {
    out.error = errorJSON(err, registry);
  }
  return out;
}

// rest calls with fetch and gives the status, the headers the page can
// read, and the body as JSON (or text).
async function rest({ url, method = 'GET', body, headers = {} }) {
  try {
    const res = await fetch(url, { method, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* NDJSON or empty */ }
    return { status: res.status, headers: headersJSON(res.headers), json, text };
  } catch (err) {
    return { fetchError: String(err) };
  }
}

// sse listens with EventSource until the stream ends: its messages, the
// data of an "event: error" record, or a bare error (the answer was not
// readable as an event stream).
function sse({ url }) {
  return new Promise((resolve) => {
    const out = { messages: [], errorData: null, bareError: false };
    const es = new EventSource(url);
    es.onmessage = (e) => out.messages.push(JSON.parse(e.data));
    es.addEventListener('error', (e) => {
      if (e.data !== undefined) out.errorData = JSON.parse(e.data);
      else out.bareError = true;
      es.close();
      resolve(out);
    });
  });
}

window.edgegate = { unary, stream, rest, sse };
window.edgegateReady = true;
