// End-to-end test of `kvpool serve` driven by the official OpenAI SDK for Node
// (openai@4.104.0, pinned in tests/serve/package.json; installed into
// tests/serve/node_modules by scripts/setup_serve_test.sh).
//
//   node tests/serve/openai_sdk_test.mjs KVPOOL_BINARY TINY_GGUF SCRATCH_DIR
//
// It starts its own `kvpool serve` processes on 127.0.0.1 (--port 0, each
// with its own --cache-dir under SCRATCH_DIR, a small DRAM and disk cache)
// and stops every one of them before it exits, on failure too. One line per
// check: "ok   <check>" or "FAIL <check>: <why>", the request and response
// of a failed check, then a summary.
//
// Exit code: 0 all checks passed, 1 a check failed (or the SDK is missing:
// run scripts/setup_serve_test.sh), 77 skipped, only when the arguments say
// that the server is not built (KVPOOL_BINARY empty, "-", a CMake
// "...-NOTFOUND", or the flag --not-built).
//
// Servers (tiny model: random weights, Llama-2 SentencePiece vocabulary):
//   main    -np 1: models, chat (plain, streamed), completions, prefix reuse
//           through the pool; stopped with SIGTERM, restarted on the same
//           --cache-dir: the pool survives
//   fresh   -np 1, new --cache-dir: request B alone gives the same completion
//   misc    -np 2 (2048 tokens a slot): bad input, client disconnect
//   tenants --api-key alpha --api-key beta: 401s, no hits across tenants
//   queue   -np 1 --max-queue 1: 429 when full
import { spawn, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';

const CHUNK = 64;  // the pool's chunk size in tokens (kvpool serve --chunk-tokens default)
// Prometheus metrics of kvpool serve (server/metrics.cc) that the checks read.
const M_REQUESTS = 'kvpool_serve_requests_total';
const M_CANCELLED = 'kvpool_serve_requests_cancelled_total';
const M_REJECTED = 'kvpool_serve_requests_rejected_queue_full_total';
const M_POOL_RESTORED = 'kvpool_serve_pool_restored_tokens_total';
const TEST_DEADLINE_MS = 420_000;  // well under the ctest TIMEOUT of 600 s

// ---------------------------------------------------------------------------
// Arguments, skip, SDK
// ---------------------------------------------------------------------------
const argv = process.argv.slice(2);
const notBuiltFlag = argv.includes('--not-built');
const args = argv.filter((a) => a !== '--not-built');
const [BIN, MODEL, SCRATCH] = args;

function skip(why) {
  console.log(`SKIP serve_openai_test: ${why}`);
  process.exit(77);
}
function fatal(why) {
  console.error(`FAIL serve_openai_test: ${why}`);
  process.exit(1);
}

if (notBuiltFlag || BIN === undefined || BIN === '' || BIN === '-' || /-NOTFOUND$/.test(BIN)) {
  skip('kvpool serve is not built (configure with llama.cpp: scripts/setup_llama.sh)');
}
if (!MODEL || !SCRATCH) {
  fatal('usage: node openai_sdk_test.mjs KVPOOL_BINARY TINY_GGUF SCRATCH_DIR [--not-built]');
}
if (!fs.existsSync(BIN)) fatal(`kvpool binary ${BIN} does not exist`);
if (!fs.existsSync(MODEL)) {
  fatal(`model ${MODEL} does not exist (make it with: kvpool-mkmodel tiny ${MODEL})`);
}
{
  const help = spawnSync(BIN, ['serve', '--help'], { encoding: 'utf8', timeout: 30_000 });
  const text = (help.stdout || '') + (help.stderr || '');
  // CLI11 prints the top-level help (status 0) when "serve" is no subcommand.
  if (help.status !== 0 || !/Usage:.*\bserve\b/.test(text)) {
    fatal(`\`${BIN} serve --help\` (status ${help.status}) shows no serve subcommand: ` +
          `this kvpool binary has no \`serve\`\n${text}`);
  }
}

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  const here = path.dirname(new URL(import.meta.url).pathname);
  fatal(`the OpenAI SDK is not installed in ${path.join(here, 'node_modules')} (${e.code || e.message}).\n` +
        `  Install it with scripts/setup_serve_test.sh (npm ci of tests/serve/package-lock.json; ` +
        `scripts/setup.sh runs it).`);
}
const sdkVersion = JSON.parse(fs.readFileSync(
  new URL('./node_modules/openai/package.json', import.meta.url), 'utf8')).version;

// ---------------------------------------------------------------------------
// Servers: start, stop, never leave one running
// ---------------------------------------------------------------------------
const live = new Set();  // child processes still running

function killAll(signal = 'SIGKILL') {
  for (const p of live) {
    try { p.kill(signal); } catch { /* already gone */ }
  }
}
process.on('exit', () => killAll('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`serve_openai_test: got ${sig}, stopping servers`);
    killAll('SIGKILL');
    process.exit(1);
  });
}
const deadline = setTimeout(() => {
  console.error(`FAIL serve_openai_test: still running after ${TEST_DEADLINE_MS / 1000} s; stopping`);
  for (const s of servers) console.error(s.tail());
  killAll('SIGKILL');
  process.exit(1);
}, TEST_DEADLINE_MS);
deadline.unref();

const servers = [];

class Server {
  constructor(name, cacheDir, extra) {
    this.name = name;
    this.cacheDir = cacheDir;
    this.args = ['serve', '-m', MODEL, '--alias', 'tiny', '--host', '127.0.0.1', '--port', '0',
                 '-c', '4096', '-t', '2', '--cache-dir', cacheDir,
                 '--cache-ram', '64', '--cache-disk', '256', ...extra];
    if (!extra.includes('-np')) this.args.push('-np', '2');
    this.logFile = path.join(SCRATCH, `${name}.log`);
    this.log = '';
    this.url = null;
    this.exited = null;  // {code, signal} once exited
  }

  async start(timeoutMs = 60_000) {
    fs.mkdirSync(this.cacheDir, { recursive: true });
    const t0 = Date.now();
    const p = spawn(BIN, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = p;
    live.add(p);
    servers.push(this);
    const logStream = fs.createWriteStream(this.logFile);
    logStream.write(`$ ${BIN} ${this.args.join(' ')}\n`);
    this.exitPromise = new Promise((resolve) => {
      p.on('exit', (code, signal) => {
        live.delete(p);
        this.exited = { code, signal };
        logStream.end(`[exited: code ${code} signal ${signal}]\n`);
        resolve(this.exited);
      });
    });
    const append = (chunk) => {
      const s = chunk.toString();
      this.log += s;
      if (this.log.length > 200_000) this.log = this.log.slice(-100_000);
      logStream.write(s);
    };
    p.stderr.on('data', append);
    let out = '';
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(
        `${this.name}: no "listening on" line within ${timeoutMs / 1000} s\n${this.tail()}`)), timeoutMs);
      p.stdout.on('data', (chunk) => {
        append(chunk);
        out += chunk.toString();
        const m = /kvpool serve: listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(out);
        if (m && !this.url) {
          this.url = m[1];
          clearTimeout(timer);
          resolve();
        }
      });
      p.on('error', (e) => { clearTimeout(timer); reject(new Error(`${this.name}: spawn failed: ${e.message}`)); });
      this.exitPromise.then((st) => {
        clearTimeout(timer);
        if (!this.url) {
          reject(new Error(`${this.name}: exited (code ${st.code}, signal ${st.signal}) before listening\n${this.tail()}`));
        }
      });
    });
    console.log(`     [${this.name}] listening on ${this.url} after ${Date.now() - t0} ms ` +
                `(${this.args.slice(1).join(' ')})`);
    return this;
  }

  tail(n = 40) {
    const lines = this.log.trimEnd().split('\n');
    return `  --- last ${Math.min(n, lines.length)} lines of ${this.logFile} ---\n` +
           lines.slice(-n).map((l) => `  | ${l}`).join('\n');
  }

  client(apiKey = 'sk-no-key-needed', opts = {}) {
    return new OpenAI({ baseURL: `${this.url}/v1`, apiKey, maxRetries: 0, timeout: 120_000, ...opts });
  }

  // SIGTERM, then wait for the exit; returns {code, signal}.
  async stop(timeoutMs = 60_000) {
    if (this.exited) return this.exited;
    this.proc.kill('SIGTERM');
    const t = new Promise((resolve) => setTimeout(() => resolve(null), timeoutMs).unref());
    const st = await Promise.race([this.exitPromise, t]);
    if (st === null) {
      this.proc.kill('SIGKILL');
      await this.exitPromise;
      throw new Error(`${this.name}: did not exit within ${timeoutMs / 1000} s of SIGTERM (killed)\n${this.tail()}`);
    }
    return st;
  }
}

async function startServer(name, cacheDir, extra = []) {
  return new Server(name, cacheDir, extra).start();
}

// ---------------------------------------------------------------------------
// Checks and reporting
// ---------------------------------------------------------------------------
const results = [];  // {name, ok, ms}

// Attaches a request/response to an error for the failure report.
function detail(err, what) {
  err.details = (err.details || []).concat([what]);
  return err;
}
function show(x) {
  const s = typeof x === 'string' ? x : JSON.stringify(x, null, 1);
  return s.length > 3000 ? `${s.slice(0, 3000)}... (${s.length} chars)` : s;
}

async function check(name, fn, server) {
  const t0 = Date.now();
  try {
    await fn();
    const ms = Date.now() - t0;
    results.push({ name, ok: true, ms });
    console.log(`ok   ${name} (${ms} ms)`);
    return true;
  } catch (e) {
    const ms = Date.now() - t0;
    results.push({ name, ok: false, ms });
    console.log(`FAIL ${name}: ${e && e.message ? e.message.split('\n')[0] : e}`);
    if (e && e.message && e.message.includes('\n')) console.log(e.message.split('\n').slice(1).join('\n'));
    if (e && e.status !== undefined && e.error !== undefined) {  // an SDK APIError
      console.log(`     status ${e.status}, body.error ${show(e.error)}`);
    }
    for (const d of (e && e.details) || []) console.log(`     ${show(d).split('\n').join('\n     ')}`);
    if (e && e.stack && !(e instanceof assert.AssertionError) && !(e.status !== undefined)) {
      console.log(e.stack.split('\n').slice(1, 4).join('\n'));
    }
    if (server) console.log(server.tail(15));
    return false;
  }
}

// Runs a group of checks that need a server; a failed start fails the group.
async function group(title, fn) {
  console.log(`---- ${title}`);
  try {
    await fn();
  } catch (e) {
    results.push({ name: `${title} (group aborted)`, ok: false, ms: 0 });
    console.log(`FAIL ${title}: group aborted: ${e && e.message ? e.message : e}`);
    for (const d of (e && e.details) || []) console.log(`     ${show(d)}`);
  }
}

// ---------------------------------------------------------------------------
// HTTP helpers (raw bodies)
// ---------------------------------------------------------------------------
async function http(server, method, urlPath, { body, raw, headers = {}, timeoutMs = 120_000 } = {}) {
  const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeoutMs) };
  if (raw !== undefined) {
    init.body = raw;
    init.headers['content-type'] ??= 'application/json';
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(server.url + urlPath, init);
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json,
           req: `${method} ${urlPath} ${raw !== undefined ? raw : body !== undefined ? JSON.stringify(body) : ''}` };
}

function summarizeBody(b) {
  // Long prompts make unreadable reports: shorten string fields.
  return JSON.parse(JSON.stringify(b, (k, v) => (typeof v === 'string' && v.length > 200
    ? `${v.slice(0, 80)}...[${v.length} chars]...${v.slice(-60)}` : v)));
}

function assertErrorBody(r, status, { param, code } = {}) {
  const where = () => `${r.req.slice(0, 300)} -> ${r.status} ${r.text.slice(0, 500)}`;
  assert.equal(r.status, status, `expected HTTP ${status}: ${where()}`);
  assert.ok(r.json && typeof r.json.error === 'object' && r.json.error !== null,
    `expected an OpenAI error body {"error":{...}}: ${where()}`);
  const e = r.json.error;
  assert.equal(typeof e.message, 'string', `error.message not a string: ${where()}`);
  assert.ok(e.message.length > 0, `empty error.message: ${where()}`);
  assert.equal(typeof e.type, 'string', `error.type not a string: ${where()}`);
  for (const k of ['param', 'code']) {
    assert.ok(k in e, `error.${k} missing (must be present, null if none): ${where()}`);
  }
  if (param !== undefined) assert.equal(e.param, param, `error.param: ${where()}`);
  if (code !== undefined) assert.equal(e.code, code, `error.code: ${where()}`);
}

// Prometheus text: sum of every series of a metric.
function metric(text, name) {
  let found = false;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) {
      found = true;
      sum += Number(m[3]);
    }
  }
  return found ? sum : undefined;
}

async function metrics(server) {
  const r = await http(server, 'GET', '/metrics');
  assert.equal(r.status, 200, `/metrics -> ${r.status} ${r.text.slice(0, 300)}`);
  return r.text;
}

function slotList(json) {
  if (Array.isArray(json)) return json;
  if (json && Array.isArray(json.slots)) return json.slots;
  return undefined;
}
function slotBusy(s) {
  if (typeof s.is_processing === 'boolean') return s.is_processing;
  if (typeof s.busy === 'boolean') return s.busy;
  if (typeof s.state === 'string') return !/^(idle|free|ready)$/i.test(s.state);
  if (typeof s.state === 'number') return s.state !== 0;
  throw new Error(`cannot tell whether slot ${JSON.stringify(s)} is busy ` +
                  '(expected is_processing, busy or state)');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Deterministic synthetic English-like text
// ---------------------------------------------------------------------------
const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which ' +
  'but have an they you were her she there one all we their been has when who will more no if ' +
  'out so said what up its about into than them can only other new some could time these two may ' +
  'then do first any my now such like our over man me even most made after also did many before ' +
  'must through back years where much your way well down should because each just those people ' +
  'how too little state good very make world still own see men work long get here between both ' +
  'life being under never day same another know while last might us great old year off come since ' +
  'against go came right used take three himself few house use during without again place around ' +
  'however home small found thought went say part once general high upon school every does got left ' +
  'number course war until always away something fact though water less public put think almost ' +
  'hand enough far took head yet government system better set told nothing night end why called ' +
  'eyes find going look asked later knew point next city business give group toward young let room ' +
  'side social given present several order national possible rather second face among form ' +
  'important often things looked early white case become large big need four within felt along ' +
  'children saw best church ever least power development light thing seemed family interest want ' +
  'members mind country area others done turned although open service certain kind problem began ' +
  'different door thus help sense means whole matter perhaps itself law human line above name ' +
  'example action company hands local show whether five history gave today either act feet across ' +
  'taken past quite anything seen having death week experience really field already information ' +
  'tell together college shall money period held keep sure probably free real seems behind cannot ' +
  'political air question making office brought whose special major heard problems federal became ' +
  'study ago moment available known result street economic boy position reason change south board ' +
  'individual job areas society west close turn love community true court force full river garden ' +
  'harbor engine winter market bridge valley letter station island morning summer forest village'
).split(' ');

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// About `words` words (~1.3 tokens each) of sentences, paragraphs of 5-8.
function syntheticText(seed, words) {
  const rnd = mulberry32(seed);
  const paras = [];
  let sentences = [];
  let n = 0;
  while (n < words) {
    const len = 7 + Math.floor(rnd() * 10);
    const w = [];
    for (let i = 0; i < len; i++) w.push(WORDS[Math.floor(rnd() * WORDS.length)]);
    if (len > 10) w[Math.floor(len / 2)] += ',';
    w[0] = w[0][0].toUpperCase() + w[0].slice(1);
    sentences.push(`${w.join(' ')}.`);
    n += len;
    if (sentences.length >= 5 + Math.floor(rnd() * 4)) {
      paras.push(sentences.join(' '));
      sentences = [];
    }
  }
  if (sentences.length) paras.push(sentences.join(' '));
  return paras.join('\n\n');
}

const DOC = `Document 7 of the harbor archive.\n\n${syntheticText(7, 900)}`;        // ~1200 tokens
const OTHER = `Report 3 of the valley survey.\n\n${syntheticText(3, 900)}`;         // unrelated, as long
const TENANT_DOC = `Memo 11 of the city board.\n\n${syntheticText(11, 900)}`;
const HUGE = syntheticText(99, 4700);                                              // ~6000 tokens
const docMsg = (doc, q) => [{ role: 'user', content: `${doc}\n\nQuestion: ${q}` }];
const QA = 'What does the document say about the river?';
const QB = 'Who wrote the letter to the board, and why?';
const QC = 'Summarize the second paragraph in one sentence.';

// ---------------------------------------------------------------------------
// Response shape checks
// ---------------------------------------------------------------------------
function checkUsage(usage, maxTokens, finish, what) {
  assert.ok(usage && typeof usage === 'object', `${what}: usage missing`);
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(usage[k]) && usage[k] >= 0, `${what}: usage.${k} = ${usage[k]}`);
  }
  assert.ok(usage.prompt_tokens > 0, `${what}: usage.prompt_tokens = 0`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens,
    `${what}: usage.total_tokens != prompt_tokens + completion_tokens (${JSON.stringify(usage)})`);
  assert.ok(usage.completion_tokens <= maxTokens, `${what}: completion_tokens ${usage.completion_tokens} > max_tokens ${maxTokens}`);
  if (finish === 'length') {
    assert.equal(usage.completion_tokens, maxTokens, `${what}: finish_reason "length" but completion_tokens != max_tokens`);
  }
}

function checkTimings(body, what) {
  const t = body.timings;
  assert.ok(t && typeof t === 'object', `${what}: no "timings" object in the response`);
  for (const k of ['cache_n', 'prompt_n', 'prompt_ms', 'predicted_n', 'predicted_ms', 'pool_n']) {
    assert.equal(typeof t[k], 'number', `${what}: timings.${k} = ${JSON.stringify(t[k])} (${JSON.stringify(t)})`);
    assert.ok(t[k] >= 0, `${what}: timings.${k} < 0`);
  }
  const u = body.usage;
  assert.ok(u && u.prompt_tokens_details && typeof u.prompt_tokens_details.cached_tokens === 'number',
    `${what}: usage.prompt_tokens_details.cached_tokens missing (${JSON.stringify(u)})`);
  assert.ok(t.pool_n < u.prompt_tokens, `${what}: timings.pool_n ${t.pool_n} >= prompt_tokens ${u.prompt_tokens} (a token must be decoded)`);
  assert.ok(t.pool_n <= t.cache_n, `${what}: timings.pool_n ${t.pool_n} > cache_n ${t.cache_n}`);
  assert.equal(u.prompt_tokens_details.cached_tokens, t.cache_n,
    `${what}: usage.prompt_tokens_details.cached_tokens ${u.prompt_tokens_details.cached_tokens} != timings.cache_n ${t.cache_n}`);
  assert.equal(t.cache_n + t.prompt_n, u.prompt_tokens,
    `${what}: timings.cache_n ${t.cache_n} + prompt_n ${t.prompt_n} != usage.prompt_tokens ${u.prompt_tokens}`);
  assert.equal(t.predicted_n, u.completion_tokens,
    `${what}: timings.predicted_n ${t.predicted_n} != usage.completion_tokens ${u.completion_tokens}`);
  return { cached: u.prompt_tokens_details.cached_tokens, pool: t.pool_n, cache: t.cache_n, prompt: u.prompt_tokens };
}

function checkChat(c, maxTokens, what) {
  assert.equal(typeof c.id, 'string', `${what}: id`);
  assert.ok(c.id.length > 0, `${what}: empty id`);
  assert.equal(c.object, 'chat.completion', `${what}: object`);
  assert.ok(Number.isInteger(c.created), `${what}: created = ${c.created}`);
  assert.equal(typeof c.model, 'string', `${what}: model`);
  assert.ok(Array.isArray(c.choices) && c.choices.length === 1, `${what}: choices = ${JSON.stringify(c.choices)}`);
  const ch = c.choices[0];
  assert.equal(ch.index, 0, `${what}: choices[0].index`);
  assert.equal(ch.message.role, 'assistant', `${what}: choices[0].message.role`);
  assert.equal(typeof ch.message.content, 'string', `${what}: choices[0].message.content`);
  assert.ok(['stop', 'length'].includes(ch.finish_reason), `${what}: finish_reason = ${ch.finish_reason}`);
  checkUsage(c.usage, maxTokens, ch.finish_reason, what);
  return ch.message.content;
}

// A chat request through the SDK, with the raw response; returns the body
// and the cache numbers (timings).
async function chat(client, messages, maxTokens, what, extra = {}) {
  const req = { model: 'tiny', messages, max_tokens: maxTokens, temperature: 0, seed: 42, ...extra };
  let data;
  let response;
  try {
    ({ data, response } = await client.chat.completions.create(req).withResponse());
  } catch (e) {
    throw detail(e, { request: summarizeBody(req) });
  }
  try {
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') || '', /application\/json/, `${what}: content-type`);
    const content = checkChat(data, maxTokens, what);
    const cache = checkTimings(data, what);
    return { data, content, ...cache };
  } catch (e) {
    throw detail(e, { request: summarizeBody(req), response: data });
  }
}

function cacheLine(what, r) {
  return `     ${what}: prompt_tokens ${r.prompt} cached_tokens ${r.cached} pool_n ${r.pool} ` +
         `completion ${JSON.stringify(r.content.slice(0, 60))}`;
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------
const tStart = Date.now();
console.log(`serve_openai_test: ${BIN} serve, model ${MODEL}, scratch ${SCRATCH}, ` +
            `openai@${sdkVersion}, node ${process.version}`);
fs.mkdirSync(SCRATCH, { recursive: true });
for (const d of ['main', 'fresh', 'misc', 'tenants', 'queue']) {
  fs.rmSync(path.join(SCRATCH, d), { recursive: true, force: true });
}

const shared = {};  // values carried between groups

try {
  // ---- main server: a, b, c, d, e -----------------------------------------
  let main;
  await group('main server (-np 1): health, models, chat, completions, prefix reuse', async () => {
    main = await startServer('main', path.join(SCRATCH, 'main'), ['-np', '1']);
    const client = main.client();

    await check('a. GET /health is ok', async () => {
      const r = await http(main, 'GET', '/health');
      assert.equal(r.status, 200, `/health -> ${r.status} ${r.text}`);
      if (r.json && 'status' in r.json) assert.equal(r.json.status, 'ok', `/health body ${r.text}`);
    }, main);

    await check('a. GET /v1/models lists the model id', async () => {
      const r = await http(main, 'GET', '/v1/models');
      assert.equal(r.status, 200, `/v1/models -> ${r.status} ${r.text}`);
      assert.equal(r.json && r.json.object, 'list', `/v1/models object: ${r.text}`);
      assert.ok(Array.isArray(r.json.data), `/v1/models data: ${r.text}`);
      const ids = r.json.data.map((m) => m.id);
      assert.ok(ids.includes('tiny'), `model id "tiny" (--alias) not in ${JSON.stringify(ids)}`);
      for (const m of r.json.data) assert.equal(m.object, 'model', `model entry ${JSON.stringify(m)}`);
    }, main);

    await check('a. SDK models.list() returns the model', async () => {
      const page = await client.models.list();
      const ids = [];
      for await (const m of page) ids.push(m.id);
      assert.ok(ids.includes('tiny'), `SDK models.list(): ${JSON.stringify(ids)}`);
      const m = await client.models.retrieve('tiny').catch((e) => e);
      if (!(m instanceof Error)) assert.equal(m.id, 'tiny', `models.retrieve: ${JSON.stringify(m)}`);
    }, main);

    const shortMsgs = [
      { role: 'system', content: 'You are a terse assistant.' },
      { role: 'user', content: 'Name three rivers of the valley and the bridge over each of them.' },
    ];
    let plain;
    await check('b. SDK chat completion (non-streaming): shape and usage', async () => {
      plain = await chat(client, shortMsgs, 24, 'chat');
      console.log(`     content ${JSON.stringify(plain.content.slice(0, 80))} usage ${JSON.stringify(plain.data.usage)}`);
    }, main);

    await check('c. SDK streaming chat completion equals the non-streaming one, with final usage', async () => {
      assert.ok(plain, 'needs the result of check b');
      const req = { model: 'tiny', messages: shortMsgs, max_tokens: 24, temperature: 0, seed: 42,
                    stream: true, stream_options: { include_usage: true } };
      const stream = await client.chat.completions.create(req);
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      const info = { request: summarizeBody(req), chunks: chunks.length > 8 ? [...chunks.slice(0, 4), '...', ...chunks.slice(-3)] : chunks };
      try {
        assert.ok(chunks.length >= 2, `only ${chunks.length} chunks`);
        const ids = new Set(chunks.map((c) => c.id));
        assert.equal(ids.size, 1, `chunk ids differ: ${JSON.stringify([...ids])}`);
        for (const c of chunks) {
          assert.equal(c.object, 'chat.completion.chunk', `chunk object ${JSON.stringify(c)}`);
          assert.equal(typeof c.id, 'string', 'chunk id');
          assert.ok(Array.isArray(c.choices), `chunk choices ${JSON.stringify(c)}`);
        }
        let text = '';
        let finish = null;
        let role = null;
        for (const c of chunks) {
          for (const ch of c.choices) {
            if (ch.delta && typeof ch.delta.content === 'string') text += ch.delta.content;
            if (ch.delta && ch.delta.role) role = role ?? ch.delta.role;
            if (ch.finish_reason) finish = ch.finish_reason;
          }
        }
        assert.equal(role, 'assistant', 'no delta.role "assistant" in the stream');
        assert.ok(['stop', 'length'].includes(finish), `stream finish_reason = ${finish}`);
        const last = chunks[chunks.length - 1];
        assert.ok(last.usage, `the last chunk has no usage (stream_options.include_usage): ${JSON.stringify(last)}`);
        assert.deepEqual(last.choices, [], `the usage chunk must have choices: [] (${JSON.stringify(last)})`);
        checkUsage(last.usage, 24, finish, 'stream usage');
        for (const c of chunks.slice(0, -1)) {
          assert.ok(c.usage === undefined || c.usage === null, `usage before the last chunk: ${JSON.stringify(c)}`);
        }
        assert.equal(text, plain.content, 'streamed content != non-streaming content (temperature 0, seed 42)');
        assert.equal(last.usage.completion_tokens, plain.data.usage.completion_tokens, 'streamed completion_tokens');
        assert.equal(last.usage.prompt_tokens, plain.data.usage.prompt_tokens, 'streamed prompt_tokens');
        assert.equal(finish, plain.data.choices[0].finish_reason, 'streamed finish_reason');
      } catch (e) {
        throw detail(e, info);
      }
    }, main);

    await check('d. SDK completions.create (non-streaming and streaming)', async () => {
      const req = { model: 'tiny', prompt: 'Once upon a time, in the village by the harbor,', max_tokens: 16,
                    temperature: 0, seed: 42 };
      const { data: c, response } = await client.completions.create(req).withResponse();
      try {
        assert.equal(response.status, 200);
        assert.equal(typeof c.id, 'string', 'id');
        assert.equal(c.object, 'text_completion', 'object');
        assert.ok(Array.isArray(c.choices) && c.choices.length === 1, 'choices');
        assert.equal(typeof c.choices[0].text, 'string', 'choices[0].text');
        assert.equal(c.choices[0].index, 0, 'choices[0].index');
        assert.ok(['stop', 'length'].includes(c.choices[0].finish_reason), `finish_reason ${c.choices[0].finish_reason}`);
        checkUsage(c.usage, 16, c.choices[0].finish_reason, 'completion');
      } catch (e) {
        throw detail(e, { request: req, response: c });
      }
      const chunks = [];
      const stream = await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
      for await (const ch of stream) chunks.push(ch);
      try {
        assert.ok(chunks.length >= 2, `only ${chunks.length} chunks`);
        let text = '';
        let finish = null;
        for (const ch of chunks) {
          assert.equal(ch.object, 'text_completion', `stream chunk object ${JSON.stringify(ch)}`);
          for (const x of ch.choices || []) {
            if (typeof x.text === 'string') text += x.text;
            if (x.finish_reason) finish = x.finish_reason;
          }
        }
        assert.equal(text, c.choices[0].text, 'streamed text != non-streaming text');
        assert.equal(finish, c.choices[0].finish_reason, 'streamed finish_reason');
        const last = chunks[chunks.length - 1];
        assert.ok(last.usage, `no usage in the last completions chunk: ${JSON.stringify(last)}`);
        checkUsage(last.usage, 16, finish, 'completions stream usage');
        assert.equal(last.usage.completion_tokens, c.usage.completion_tokens, 'streamed completion_tokens');
      } catch (e) {
        throw detail(e, { request: { ...req, stream: true }, chunks, nonStreaming: c });
      }
    }, main);

    await check('e. prefix reuse: doc + question B after doc + question A hits the pool', async () => {
      const a = await chat(client, docMsg(DOC, QA), 16, 'doc+A');
      console.log(cacheLine('doc+A', a));
      assert.ok(a.prompt > 3 * CHUNK, `document too short for the check: ${a.prompt} prompt tokens`);
      assert.ok(a.prompt < 2000, `document too long: ${a.prompt} prompt tokens`);
      assert.equal(a.pool, 0, `doc+A on an empty pool: timings.pool_n = ${a.pool}, want 0`);
      // An unrelated long request takes the only slot, so B cannot reuse the slot's KV.
      const o = await chat(client, docMsg(OTHER, QA), 16, 'unrelated');
      console.log(cacheLine('unrelated', o));
      assert.equal(o.pool, 0, `unrelated document: timings.pool_n = ${o.pool}, want 0`);
      const b = await chat(client, docMsg(DOC, QB), 16, 'doc+B');
      console.log(cacheLine('doc+B', b));
      try {
        assert.ok(b.cached > 0, `doc+B: usage.prompt_tokens_details.cached_tokens = ${b.cached}, want > 0`);
        assert.ok(b.pool > 0, `doc+B: timings.pool_n = ${b.pool}, want > 0 (restored from the pool)`);
        assert.equal(b.pool % CHUNK, 0, `doc+B: timings.pool_n = ${b.pool} is not a multiple of ${CHUNK}`);
        // The whole chunks of the shared prefix: at least all but the last chunk of the document.
        assert.ok(b.pool >= CHUNK * (Math.floor(a.prompt / CHUNK) - 1),
          `doc+B: timings.pool_n = ${b.pool} of a ~${a.prompt}-token shared document`);
      } catch (e) {
        throw detail(e, { responseB: summarizeBody(b.data) });
      }
      const restored = metric(await metrics(main), M_POOL_RESTORED);
      assert.ok(restored !== undefined && restored >= b.pool, `${M_POOL_RESTORED} = ${restored}, want >= ${b.pool}`);
      shared.b = b;
    }, main);
  });

  // ---- fresh server: e (determinism) ---------------------------------------
  await group('fresh server (-np 1, new cache dir): doc + question B alone', async () => {
    const fresh = await startServer('fresh', path.join(SCRATCH, 'fresh'), ['-np', '1']);
    try {
      await check('e. doc + question B on a fresh server gives the same completion as after the pool hit', async () => {
        assert.ok(shared.b, 'needs the result of the prefix-reuse check');
        const b = await chat(fresh.client(), docMsg(DOC, QB), 16, 'fresh doc+B');
        console.log(cacheLine('fresh doc+B', b));
        assert.equal(b.cached, 0, `fresh server: cached_tokens = ${b.cached}, want 0`);
        assert.equal(b.pool, 0, `fresh server: pool_n = ${b.pool}, want 0`);
        assert.equal(b.prompt, shared.b.prompt, 'prompt_tokens differ');
        assert.equal(b.content, shared.b.content,
          'temperature 0: the completion after a pool restore differs from a fresh computation');
        assert.equal(b.data.choices[0].finish_reason, shared.b.data.choices[0].finish_reason, 'finish_reason');
      }, fresh);
    } finally {
      await check('fresh server exits 0 on SIGTERM', async () => {
        const st = await fresh.stop();
        assert.deepEqual(st, { code: 0, signal: null }, `exit status ${JSON.stringify(st)}`);
      }, fresh);
    }
  });

  // ---- restart: f ------------------------------------------------------------
  await group('restart of the main server on the same --cache-dir', async () => {
    if (!main) throw new Error('the main server did not start');
    await check('f. main server exits 0 on SIGTERM', async () => {
      const st = await main.stop();
      assert.deepEqual(st, { code: 0, signal: null }, `exit status ${JSON.stringify(st)}`);
    }, main);
    const again = await startServer('main-restarted', path.join(SCRATCH, 'main'), ['-np', '1']);
    try {
      await check('f. after the restart doc + question C hits the pool that survived', async () => {
        const c = await chat(again.client(), docMsg(DOC, QC), 16, 'restart doc+C');
        console.log(cacheLine('doc+C after restart', c));
        assert.ok(c.pool > 0, `after restart: timings.pool_n = ${c.pool}, want > 0`);
        assert.equal(c.pool % CHUNK, 0, `after restart: pool_n = ${c.pool} not a multiple of ${CHUNK}`);
        assert.ok(c.cached > 0, `after restart: cached_tokens = ${c.cached}, want > 0`);
        assert.ok(!shared.b || c.pool >= shared.b.pool,
          `after restart: pool_n = ${c.pool} < ${shared.b && shared.b.pool} restored before the restart`);
      }, again);
    } finally {
      await check('f. restarted server exits 0 on SIGTERM', async () => {
        const st = await again.stop();
        assert.deepEqual(st, { code: 0, signal: null }, `exit status ${JSON.stringify(st)}`);
      }, again);
    }
  });

  // ---- misc server: h ----------------------------------------------------------
  await group('misc server (-np 2, 2048 tokens a slot): bad input, client disconnect', async () => {
    const misc = await startServer('misc', path.join(SCRATCH, 'misc'), ['-np', '2']);
    const client = misc.client();
    const valid = { model: 'tiny', messages: [{ role: 'user', content: 'Say hello to the harbor.' }],
                    max_tokens: 4, temperature: 0 };
    const stillWorks = async (after) => {
      const r = await http(misc, 'POST', '/v1/chat/completions', { body: valid });
      assert.equal(r.status, 200, `a valid request after ${after} -> ${r.status} ${r.text.slice(0, 300)}`);
      assert.equal(r.json.object, 'chat.completion', `valid request after ${after}: ${r.text.slice(0, 300)}`);
    };
    try {
      await check('h. malformed JSON -> 400 with an error message', async () => {
        const r = await http(misc, 'POST', '/v1/chat/completions', { raw: '{"model": "tiny", "messages": [' });
        assertErrorBody(r, 400);
        await stillWorks('malformed JSON');
      }, misc);

      await check('h. temperature: "hot" -> 400, error.param "temperature"', async () => {
        const r = await http(misc, 'POST', '/v1/chat/completions', { body: { ...valid, temperature: 'hot' } });
        assertErrorBody(r, 400, { param: 'temperature' });
        await stillWorks('a bad temperature');
      }, misc);

      await check('h. messages: 5 -> 400, error.param "messages"', async () => {
        const r = await http(misc, 'POST', '/v1/chat/completions', { body: { ...valid, messages: 5 } });
        assertErrorBody(r, 400, { param: 'messages' });
        await stillWorks('messages: 5');
      }, misc);

      await check('h. SDK raises BadRequestError (400) for a bad field', async () => {
        const e = await client.chat.completions.create({ ...valid, max_tokens: 'many' }).then(
          (v) => { throw detail(new Error('expected a 400, got a completion'), v); }, (x) => x);
        assert.ok(e instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${e && e.constructor.name}: ${e && e.message}`);
        assert.equal(e.status, 400);
        assert.equal(e.param, 'max_tokens', `error.param ${JSON.stringify(e.error)}`);
      }, misc);

      await check('h. prompt longer than the slot context -> 413 context_length_exceeded', async () => {
        const r = await http(misc, 'POST', '/v1/chat/completions',
          { body: { ...valid, messages: [{ role: 'user', content: HUGE }] } });
        assertErrorBody(r, 413, { code: 'context_length_exceeded' });
        const r2 = await http(misc, 'POST', '/v1/completions', { body: { model: 'tiny', prompt: HUGE, max_tokens: 4 } });
        assertErrorBody(r2, 413, { code: 'context_length_exceeded' });
        const e = await client.chat.completions.create({ ...valid, messages: [{ role: 'user', content: HUGE }] })
          .then(() => null, (x) => x);
        assert.ok(e instanceof OpenAI.APIError && e.status === 413, `SDK: expected an APIError with status 413, got ${e}`);
        await stillWorks('a too long prompt');
      }, misc);

      await check('h. unknown model -> 404 model_not_found', async () => {
        const r = await http(misc, 'POST', '/v1/chat/completions', { body: { ...valid, model: 'no-such-model' } });
        assertErrorBody(r, 404, { code: 'model_not_found' });
        const e = await client.chat.completions.create({ ...valid, model: 'no-such-model' }).then(() => null, (x) => x);
        assert.ok(e instanceof OpenAI.NotFoundError, `SDK: expected NotFoundError, got ${e}`);
        await stillWorks('an unknown model');
      }, misc);

      await check('h. client disconnect mid-stream: cancelled, the server keeps serving', async () => {
        const before = metric(await metrics(misc), M_CANCELLED) ?? 0;
        const ac = new AbortController();
        const stream = await client.chat.completions.create(
          { model: 'tiny', messages: [{ role: 'user', content: 'Tell a very long story about the river.' }],
            max_tokens: 1900, temperature: 0, stream: true },
          { signal: ac.signal });
        // The SDK ends the iteration quietly (or with APIUserAbortError) once aborted.
        let got = 0;
        let finish = null;
        try {
          for await (const c of stream) {
            for (const ch of c.choices || []) finish = finish ?? ch.finish_reason ?? null;
            if (++got === 2) ac.abort();
          }
        } catch (e) {
          if (!(e instanceof OpenAI.APIUserAbortError) && e.name !== 'AbortError') throw e;
        }
        assert.ok(got >= 2, `only ${got} chunks before the stream ended`);
        assert.ok(ac.signal.aborted, 'not aborted');
        assert.equal(finish, null, `the stream finished (${finish}, ${got} chunks) before the abort took effect`);
        const h = await http(misc, 'GET', '/health');
        assert.equal(h.status, 200, `/health after the disconnect -> ${h.status} ${h.text}`);
        await stillWorks('a client disconnect');
        let slots;
        let busy;
        const until = Date.now() + 5000;
        for (;;) {
          const r = await http(misc, 'GET', '/slots');
          assert.equal(r.status, 200, `/slots -> ${r.status} ${r.text.slice(0, 300)}`);
          slots = slotList(r.json);
          assert.ok(slots, `/slots: expected an array of slots: ${r.text.slice(0, 300)}`);
          assert.equal(slots.length, 2, `/slots with -np 2: ${r.text.slice(0, 300)}`);
          busy = slots.filter(slotBusy);
          if (busy.length === 0 || Date.now() > until) break;
          await sleep(200);
        }
        assert.equal(busy.length, 0, `a slot is still busy 5 s after the disconnect: ${JSON.stringify(busy).slice(0, 500)}`);
        let after;
        const until2 = Date.now() + 5000;
        for (;;) {
          const text = await metrics(misc);
          after = metric(text, M_CANCELLED);
          assert.ok(after !== undefined,
            `/metrics has no ${M_CANCELLED}; kvpool_serve_* metrics: ` +
            JSON.stringify(text.split('\n').filter((l) => l.startsWith('kvpool_serve')).slice(0, 30)));
          if (after >= before + 1 || Date.now() > until2) break;
          await sleep(200);
        }
        assert.ok(after >= 1 && after >= before + 1,
          `${M_CANCELLED} = ${after} (before ${before}), want it to count the disconnect`);
        const requests = metric(await metrics(misc), M_REQUESTS);
        assert.ok(requests !== undefined && requests >= 1, `${M_REQUESTS} = ${requests}`);
      }, misc);
    } finally {
      await check('misc server exits 0 on SIGTERM', async () => {
        const st = await misc.stop();
        assert.deepEqual(st, { code: 0, signal: null }, `exit status ${JSON.stringify(st)}`);
      }, misc);
    }
  });

  // ---- tenants: g -----------------------------------------------------------------
  await group('tenants server (--api-key alpha --api-key beta, -np 1)', async () => {
    const ten = await startServer('tenants', path.join(SCRATCH, 'tenants'),
      ['-np', '1', '--api-key', 'alpha', '--api-key', 'beta']);
    const alpha = ten.client('alpha');
    const beta = ten.client('beta');
    const valid = { model: 'tiny', messages: [{ role: 'user', content: 'Hello.' }], max_tokens: 4, temperature: 0 };
    try {
      await check('g. no API key / a wrong API key -> 401', async () => {
        const r = await http(ten, 'POST', '/v1/chat/completions', { body: valid });
        assertErrorBody(r, 401);
        const r2 = await http(ten, 'POST', '/v1/chat/completions',
          { body: valid, headers: { authorization: 'Bearer gamma' } });
        assertErrorBody(r2, 401);
        const r3 = await http(ten, 'GET', '/v1/models');
        assertErrorBody(r3, 401);
        const e = await ten.client('gamma').chat.completions.create(valid).then(() => null, (x) => x);
        assert.ok(e instanceof OpenAI.AuthenticationError, `SDK: expected AuthenticationError, got ${e}`);
        assert.equal(e.status, 401);
        const ok = await alpha.chat.completions.create(valid);
        assert.equal(ok.object, 'chat.completion', 'alpha (a valid key) is served');
        const models = await beta.models.list();
        assert.ok(models.data.some((m) => m.id === 'tiny'), 'beta lists the models');
      }, ten);

      await check('g. tenant alpha: doc + Q2 after doc + Q1 hits alpha\'s pool', async () => {
        const q1 = await chat(alpha, docMsg(TENANT_DOC, QA), 8, 'alpha doc+Q1');
        console.log(cacheLine('alpha doc+Q1', q1));
        assert.equal(q1.pool, 0, `alpha's first document: pool_n = ${q1.pool}`);
        const o = await chat(alpha, docMsg(OTHER, QA), 8, 'alpha unrelated');
        console.log(cacheLine('alpha unrelated', o));
        const q2 = await chat(alpha, docMsg(TENANT_DOC, QB), 8, 'alpha doc+Q2');
        console.log(cacheLine('alpha doc+Q2', q2));
        assert.ok(q2.pool > 0, `alpha doc+Q2: timings.pool_n = ${q2.pool}, want > 0`);
        assert.ok(q2.cached > 0, `alpha doc+Q2: cached_tokens = ${q2.cached}, want > 0`);
      }, ten);

      await check('g. tenant beta: the same doc + Q2 gets no hit (neither pool nor alpha\'s slot)', async () => {
        // The only slot holds alpha's doc + Q2 right now.
        const b = await chat(beta, docMsg(TENANT_DOC, QB), 8, 'beta doc+Q2');
        console.log(cacheLine('beta doc+Q2', b));
        assert.equal(b.pool, 0, `beta doc+Q2: timings.pool_n = ${b.pool}, want 0 (alpha's KV must not be shared)`);
        assert.equal(b.cached, 0, `beta doc+Q2: cached_tokens = ${b.cached}, want 0 (no reuse of alpha's slot either)`);
        // beta's own entries are then found by beta.
        await chat(beta, docMsg(OTHER, QB), 8, 'beta unrelated');
        const b3 = await chat(beta, docMsg(TENANT_DOC, QC), 8, 'beta doc+Q3');
        console.log(cacheLine('beta doc+Q3', b3));
        assert.ok(b3.pool > 0, `beta doc+Q3 after beta's doc+Q2: pool_n = ${b3.pool}, want > 0`);
      }, ten);
    } finally {
      await check('tenants server exits 0 on SIGTERM', async () => {
        const st = await ten.stop();
        assert.deepEqual(st, { code: 0, signal: null }, `exit status ${JSON.stringify(st)}`);
      }, ten);
    }
  });

  // ---- queue: 429 -----------------------------------------------------------------
  await group('queue server (-np 1 --max-queue 1)', async () => {
    const q = await startServer('queue', path.join(SCRATCH, 'queue'), ['-np', '1', '--max-queue', '1']);
    const client = q.client();
    try {
      await check('h. queue full -> 429 (4 concurrent requests, one slot, a queue of one)', async () => {
        const docs = [0, 1, 2, 3].map((i) => `Log ${i} of the station.\n\n${syntheticText(100 + i, 700)}`);
        const settled = await Promise.allSettled(docs.map((d) =>
          client.chat.completions.create({ model: 'tiny', messages: docMsg(d, QA), max_tokens: 200, temperature: 0 })));
        const statuses = settled.map((s) => (s.status === 'fulfilled' ? 200 : s.reason && s.reason.status));
        console.log(`     statuses ${JSON.stringify(statuses)}`);
        assert.ok(statuses.includes(429), `no 429 among ${JSON.stringify(statuses)}`);
        assert.ok(statuses.includes(200), `none served among ${JSON.stringify(statuses)}`);
        for (const s of settled) {
          if (s.status === 'rejected') {
            const e = s.reason;
            assert.ok(e instanceof OpenAI.RateLimitError, `expected RateLimitError (429), got ${e && e.constructor.name}: ${e && e.message}`);
            assert.equal(typeof (e.error && e.error.message), 'string', `429 body: ${JSON.stringify(e.error)}`);
          } else {
            assert.equal(s.value.object, 'chat.completion');
          }
        }
        const r = await http(q, 'POST', '/v1/chat/completions',
          { body: { model: 'tiny', messages: [{ role: 'user', content: 'Hi.' }], max_tokens: 4 } });
        assert.equal(r.status, 200, `a request after the burst -> ${r.status} ${r.text.slice(0, 300)}`);
        const rejected = metric(await metrics(q), M_REJECTED);
        const n429 = statuses.filter((x) => x === 429).length;
        assert.ok(rejected !== undefined && rejected >= n429, `${M_REJECTED} = ${rejected}, want >= ${n429} (the 429s)`);
      }, q);
    } finally {
      await check('queue server exits 0 on SIGTERM', async () => {
        const st = await q.stop();
        assert.deepEqual(st, { code: 0, signal: null }, `exit status ${JSON.stringify(st)}`);
      }, q);
    }
  });
} finally {
  // Whatever happened: no server is left running.
  for (const s of servers) {
    if (!s.exited) {
      try { await s.stop(20_000); } catch (e) { console.log(`     ${e.message.split('\n')[0]}`); }
    }
  }
  killAll('SIGKILL');
}

const failed = results.filter((r) => !r.ok);
console.log(`serve_openai_test: ${results.length - failed.length}/${results.length} checks passed ` +
            `in ${((Date.now() - tStart) / 1000).toFixed(1)} s (server logs in ${SCRATCH}/*.log)`);
for (const f of failed) console.log(`  failed: ${f.name}`);
process.exit(failed.length ? 1 : 0);
