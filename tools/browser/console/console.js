// The edgegate console: lists the routed methods of the schema registry
// (api/methods), builds each request from its input message's template,
// and calls it over gRPC-Web (binary, or text) or one of its REST
// bindings through call/ (the doors of one listener, same origin). The
// auth token is kept in this page only.
import { fromJson, toJson } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { textFetch } from '../src/grpcwebtext.js';
import { loadRegistry, errorJSON, headersJSON } from '../src/schema.js';

const codeNames = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
};
const base = new URL('.', location.href);
const callBase = new URL('call', base).href;

let info, registry, current, abort;

async function main() {
  const [res, reg] = await Promise.all([fetch(new URL('api/methods', base)), loadRegistry(new URL('api/descriptors', base))]);
  info = await res.json();
  registry = reg;
  $('listener').textContent = info.can_call ? `calls go through listener ${info.listener || '#0'} (${info.address})` : 'no listener with gRPC-Web or REST: calls are off';
  renderList('');
  $('filter').addEventListener('input', (e) => renderList(e.target.value.toLowerCase()));
  $('auth-kind').addEventListener('change', () => { $('apikey-header').hidden = $('auth-kind').value !== 'apikey'; });
  $('call').addEventListener('click', call);
  $('cancel').addEventListener('click', () => abort && abort.abort());
  $('copy-curl').addEventListener('click', () => copy(curlCommand()));
  $('copy-grpcurl').addEventListener('click', () => copy(grpcurlCommand()));
  window.edgegateReady = true;
}

function renderList(filter) {
  const ul = $('methods');
  ul.replaceChildren();
  let service = '';
  for (const m of info.methods) {
    const hay = (m.full + ' ' + m.bindings.map((b) => b.verb + ' ' + b.path).join(' ')).toLowerCase();
    if (filter && !hay.includes(filter)) continue;
    if (m.service !== service) {
      service = m.service;
      ul.append(el('li', { class: 'service', title: `${m.service} · ${m.source}` }, `${m.service} · ${m.source}`));
    }
    const li = el('li', { class: 'method', 'data-full': m.full },
      el('span', { class: 'name' }, m.method),
      el('span', { class: 'badge' }, m.kind.replace('_', ' ')),
      el('span', { class: 'badge' }, m.cluster ? `→ ${m.cluster}` : 'no route'));
    for (const b of m.bindings) li.append(el('div', { class: 'binding' }, `${b.verb} ${b.path}`));
    li.addEventListener('click', () => select(m, li));
    ul.append(li);
  }
}

function select(m, li) {
  current = m;
  document.querySelectorAll('.method.selected').forEach((x) => x.classList.remove('selected'));
  li.classList.add('selected');
  $('empty').hidden = true;
  $('detail').hidden = false;
  $('result').hidden = true;
  $('command').hidden = true;
  $('title').textContent = m.full;
  $('meta').textContent = `${m.kind.replace('_', ' ')} · ${m.input} → ${m.output} · route ${m.route || '—'} · cluster ${m.cluster || '—'} · ${m.source}`;
  $('comment').textContent = m.comment || '';
  $('request').value = JSON.stringify(m.template, null, 2);
  const tb = $('fields').tBodies[0];
  tb.replaceChildren(...m.fields.map((f) => el('tr', {}, el('td', {}, f.path), el('td', {}, f.type), el('td', {}, f.comment || ''))));
  const tr = $('transport');
  tr.replaceChildren(el('option', { value: 'grpc-web' }, 'gRPC-Web (binary)'), el('option', { value: 'grpc-web-text' }, 'gRPC-Web (text)'));
  m.bindings.forEach((b, i) => tr.append(el('option', { value: `rest:${i}` }, `REST ${b.verb} ${b.path}`)));
  const callable = info.can_call && (m.kind === 'unary' || m.kind === 'server_stream');
  $('call').disabled = !callable;
  $('call').title = callable ? '' : 'a browser calls unary and server-streaming methods only';
}

function authHeaders() {
  const v = $('auth').value.trim();
  if (!v) return {};
  if ($('auth-kind').value === 'apikey') return { [$('apikey-header').value.trim() || 'x-api-key']: v };
  return { authorization: v.toLowerCase().startsWith('bearer ') ? v : `Bearer ${v}` };
}

function requestJSON() {
  return JSON.parse($('request').value || '{}');
}

// Result display.
let started = 0;
function begin() {
  $('result').hidden = false;
  $('messages').replaceChildren();
  $('details').textContent = '';
  $('details').hidden = true;
  $('details-title').hidden = true;
  setTable('headers', {});
  setTable('trailers', {});
  setStatus('calling…', '');
  $('timing').textContent = '';
  started = performance.now();
}
const elapsed = () => `${(performance.now() - started).toFixed(1)} ms`;
function addMessage(json) {
  const n = $('messages').children.length;
  $('messages').append(el('li', { class: 'msg' }, `#${n} +${elapsed()}  ${JSON.stringify(json)}`));
}
function setStatus(text, cls) {
  $('status').textContent = text;
  $('status').className = cls;
}
function setTable(id, obj) {
  $(id).tBodies[0].replaceChildren(...Object.entries(obj).map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v))));
}
function finish(code, message, details) {
  const name = codeNames[code] ?? `code ${code}`;
  setStatus(code === 0 ? 'OK (0)' : `${name} (${code}): ${message}`, code === 0 ? 'ok' : 'bad');
  if (details && details.length) {
    $('details').textContent = JSON.stringify(details, null, 2);
    $('details').hidden = false;
    $('details-title').hidden = false;
  }
  $('timing').textContent = `in ${elapsed()}`;
}

async function call() {
  if (!current) return;
  let body;
  try {
    body = requestJSON();
  } catch (e) {
    begin();
    finish(3, `the request is not JSON: ${e.message}`);
    return;
  }
  abort = new AbortController();
  $('cancel').disabled = false;
  $('call').disabled = true;
  begin();
  try {
    const t = $('transport').value;
    if (t.startsWith('rest:')) await callREST(current.bindings[Number(t.slice(5))], body);
    else await callGRPCWeb(t === 'grpc-web-text', body);
  } finally {
    $('cancel').disabled = true;
    $('call').disabled = false;
    abort = undefined;
  }
}

async function callGRPCWeb(text, json) {
  const svc = registry.getService(current.service);
  const md = svc.methods.find((x) => x.name === current.method);
  const transport = createGrpcWebTransport({ baseUrl: callBase, useBinaryFormat: true, fetch: text ? textFetch : undefined });
  const client = createClient(svc, transport);
  const opts = { headers: authHeaders(), signal: abort.signal, onHeader: (h) => setTable('headers', headersJSON(h)), onTrailer: (t) => setTable('trailers', headersJSON(t)) };
  let req;
  try {
    req = fromJson(md.input, json, { registry });
  } catch (e) {
    finish(3, `the request does not fit ${current.input}: ${e.message}`);
    return;
  }
  try {
    if (current.kind === 'server_stream') {
      for await (const m of client[md.localName](req, opts)) addMessage(toJson(md.output, m, { registry }));
    } else {
      addMessage(toJson(md.output, await client[md.localName](req, opts), { registry }));
    }
    finish(0);
  } catch (err) {
    const e = errorJSON(err, registry);
    if (Object.keys(e.metadata).length) setTable('trailers', e.metadata);
    finish(e.code, e.message, e.details);
  }
}

// restRequest is a binding's URL, and body, from the request JSON: path
// variables from their fields, the body as the binding says, the other
// top-level fields in the query when the binding has no body.
function restRequest(b, json) {
  const rest = structuredClone(json);
  const used = new Set();
  const path = b.path.replace(/\{([^}=]+)(=[^}]*)?\}/g, (_, field) => {
    let v = json;
    for (const p of field.split('.')) v = v?.[camel(p)];
    used.add(camel(field.split('.')[0]));
    return String(v ?? '').split('/').map(encodeURIComponent).join('/');
  });
  for (const k of used) delete rest[k];
  let body;
  const q = new URLSearchParams();
  if (b.body === '*') body = rest;
  else if (b.body) body = rest[camel(b.body)];
  else {
    for (const [k, v] of Object.entries(rest)) {
      if (v === null || typeof v === 'object' || v === '' || v === 0 || v === '0' || v === false) continue;
      q.append(k, String(v));
    }
  }
  const qs = q.toString();
  return { url: path + (qs ? `?${qs}` : ''), body };
}
const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

async function callREST(b, json) {
  const { url, body } = restRequest(b, json);
  const headers = { ...authHeaders() };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(callBase + url, { method: b.verb, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: abort.signal });
  } catch (e) {
    finish(14, String(e));
    return;
  }
  setTable('headers', { ':status': String(res.status), ...headersJSON(res.headers) });
  if (current.kind === 'server_stream' && res.ok && res.body) {
    // NDJSON: one {"result": …} or {"error": …} record a line, shown as
    // each arrives.
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let failed;
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buf += value;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const rec = JSON.parse(line);
        if (rec.error) failed = rec.error; else addMessage(rec.result ?? rec);
      }
      if (done) break;
    }
    if (failed) finish(failed.code, failed.message, failed.details);
    else finish(0);
    return;
  }
  const text = await res.text();
  let parsed;
  try { parsed = text ? JSON.parse(text) : {}; } catch { parsed = text; }
  if (res.ok) {
    addMessage(parsed);
    finish(0);
  } else {
    finish(parsed?.code ?? 2, parsed?.message ?? `HTTP ${res.status}`, parsed?.details);
  }
}

// The copied commands name the token $TOKEN: the token stays in the page.
function authFlag(quote) {
  if (!$('auth').value.trim()) return '';
  const h = $('auth-kind').value === 'apikey' ? `${$('apikey-header').value.trim() || 'x-api-key'}: $TOKEN` : 'authorization: Bearer $TOKEN';
  return ` -H ${quote(h)}`;
}
const sq = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
const dq = (s) => `"${s.replace(/(["\\`])/g, '\\$1')}"`;

function curlCommand() {
  const t = $('transport').value;
  const b = t.startsWith('rest:') ? current.bindings[Number(t.slice(5))] : current.bindings[0];
  if (!b) return `# ${current.full} has no REST binding: use grpcurl`;
  const { url, body } = restRequest(b, requestJSON());
  let cmd = `curl -X ${b.verb} ${sq(`http://${info.address}${url}`)}${authFlag(dq)}`;
  if (body !== undefined) cmd += ` -H 'content-type: application/json' -d ${sq(JSON.stringify(body))}`;
  return cmd;
}

function grpcurlCommand() {
  return `grpcurl -plaintext${authFlag(dq)} -d ${sq(JSON.stringify(requestJSON()))} ${info.address} ${current.full.slice(1)}`;
}

async function copy(text) {
  $('command').hidden = false;
  $('command').textContent = text;
  try { await navigator.clipboard.writeText(text); } catch { /* shown above */ }
}

main().catch((e) => {
  document.body.prepend(el('p', { class: 'bad' }, `console: ${e.message}`));
});
