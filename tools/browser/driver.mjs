// driver.mjs drives the system Chromium (headless) with playwright-core for
// edgegate's Go browser tests. It reads one JSON command a line on stdin
// and answers each with one JSON line on stdout:
//
//   {"id":1,"op":"goto","url":"http://127.0.0.1:1234/"}
//   {"id":2,"op":"call","fn":"unary","args":{...}}   window.edgegate[fn](args) in the page
//   {"id":3,"op":"click","sel":"#call"}              fill (value), select (value), check
//   {"id":4,"op":"waitText","sel":"#status","text":"OK"}
//   {"id":5,"op":"text","sel":"#answer"}            texts (all matches), value (of an input)
//   {"id":6,"op":"screenshot","path":"/tmp/x.png"}
//
// answered {"id":N,"ok":true,"result":…} or {"id":N,"ok":false,"error":"…"}.
// The page's console and errors go to stderr. Nothing is downloaded: the
// browser is EDGEGATE_CHROMIUM or /usr/bin/chromium.
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const browser = await chromium.launch({
  executablePath: process.env.EDGEGATE_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // Root in CI: Chromium's sandbox needs a user namespace it may not
  // have; a container's /dev/shm may be too small for its shared memory.
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
const page = await context.newPage();
page.on('console', (m) => process.stderr.write(`page console ${m.type()}: ${m.text()}\n`));
page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
const timeout = Number(process.env.EDGEGATE_BROWSER_TIMEOUT_MS || 10000);
page.setDefaultTimeout(timeout);

const ops = {
  goto: async (c) => { await page.goto(c.url); await page.waitForFunction(() => window.edgegateReady === true); },
  call: (c) => page.evaluate(([fn, args]) => window.edgegate[fn](args), [c.fn, c.args ?? {}]),
  click: (c) => page.click(c.sel),
  fill: (c) => page.fill(c.sel, c.value),
  select: (c) => page.selectOption(c.sel, c.value).then(() => undefined),
  check: (c) => page.check(c.sel),
  waitText: (c) => page.locator(c.sel).filter({ hasText: c.text }).first().waitFor(),
  waitCount: (c) => page.waitForFunction(([sel, n]) => document.querySelectorAll(sel).length >= n, [c.sel, c.n]),
  text: (c) => page.locator(c.sel).first().textContent(),
  value: (c) => page.inputValue(c.sel),
  texts: (c) => page.locator(c.sel).allTextContents(),
  screenshot: (c) => page.screenshot({ path: c.path, fullPage: !!c.full }).then(() => undefined),
};

const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let c;
  try { c = JSON.parse(line); } catch (e) { out({ id: 0, ok: false, error: `bad command: ${e.message}` }); continue; }
  const op = ops[c.op];
  if (!op) { out({ id: c.id, ok: false, error: `unknown op ${c.op}` }); continue; }
  try {
    const result = await op(c);
    out({ id: c.id, ok: true, result: result ?? null });
  } catch (e) {
    out({ id: c.id, ok: false, error: String(e && e.message || e) });
  }
}
await browser.close();
