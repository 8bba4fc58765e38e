#!/usr/bin/env node
// Browser end-to-end check of attachments and the hand-off to a human in the chat UI.
//
//   node tests/e2e/browser/handoff.mjs --url http://127.0.0.1:PORT/ [--screenshot /tmp/x.png]
//
// Opens the page in Debian's headless Chromium (playwright-core from
// frontend/node_modules; never downloads a browser), attaches a Markdown file
// (a chip appears) and a PNG (the edge's 415 problem is shown), then plays the
// human agent "Ana" through the edge's REST API: takes the conversation over,
// answers the customer's next message, hands it back. Prints one JSON line:
//   {"chip": ..., "refused": {"status": ..., "text": ...}, "joined": ..., "handler": ...,
//    "human": {"author": ..., "text": ...}, "typingWhileHuman": bool, "left": ...}
// and exits 0; on failure prints {"error": ...} and exits 1.

import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const OVERALL_TIMEOUT_MS = 90_000;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'];
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex');

let browser = null;
let page = null;
let screenshotPath = null;

async function finish(code, obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
  if (page && screenshotPath) await page.screenshot({ path: screenshotPath }).catch(() => {});
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 3_000))]);
  process.exit(code);
}

setTimeout(() => void finish(1, { error: `overall timeout after ${OVERALL_TIMEOUT_MS / 1000}s` }), OVERALL_TIMEOUT_MS);
process.on('unhandledRejection', (err) => void finish(1, { error: `unhandled: ${err?.message ?? err}` }));

function loadPlaywright() {
  const require = createRequire(new URL('../../../frontend/package.json', import.meta.url));
  return require('playwright-core');
}

async function staff(base, sessionId, action, body) {
  const res = await fetch(`${base}api/v1/sessions/${sessionId}/${action}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${action} answered ${res.status}: ${await res.text()}`);
  return res.json();
}

const text = async (locator) => (await locator.innerText({ timeout: 15_000 })).trim();

async function main() {
  const { values } = parseArgs({ options: { url: { type: 'string' }, screenshot: { type: 'string' } } });
  if (!values.url) return finish(1, { error: 'usage: handoff.mjs --url URL [--screenshot FILE]' });
  screenshotPath = values.screenshot ?? null;
  const base = values.url.endsWith('/') ? values.url : `${values.url}/`;

  const { chromium } = loadPlaywright();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
  await page.goto(base, { waitUntil: 'domcontentloaded', timeout: 20_000 });
  await page.waitForSelector('[data-testid="send-button"]', { timeout: 20_000 });
  await page.waitForSelector('[data-testid="attach-button"]:not([disabled])', { timeout: 20_000 });
  const sessionId = await page.evaluate(() => {
    const key = Object.keys(localStorage).find((k) => k.startsWith('concierge.session:'));
    return key ? localStorage.getItem(key) : null;
  });
  if (!sessionId) return finish(1, { error: 'the page stored no session id' });

  // A file the edge reads: its chip shows once stored.
  const input = page.getByTestId('attach-input');
  await input.setInputFiles({ name: 'error-codes.md', mimeType: 'text/markdown', buffer: Buffer.from('# Error codes\n\nE42: brush blocked.\n') });
  const chip = page.locator('[data-testid="attachment-chip"][data-status="stored"]');
  await chip.waitFor({ timeout: 20_000 });

  // A file it cannot read: the problem detail is shown.
  await input.setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: PNG });
  const refusal = page.getByTestId('attachment-error');
  await refusal.waitFor({ timeout: 20_000 });
  const refused = { status: await refusal.getAttribute('data-status'), text: await text(refusal) };

  // Ana takes over: the customer is told who joined.
  await staff(base, sessionId, 'takeover', { agentName: 'Ana' });
  const joined = await text(page.locator('[data-testid="handoff-notice"][data-kind="joined"]'));
  const handler = await text(page.getByTestId('handler-status'));

  // The customer writes; no bot answer is awaited; Ana replies.
  await page.getByTestId('chat-input').fill('It still beeps twice.');
  await page.getByTestId('send-button').click();
  await page.waitForSelector('[data-testid="message-user"][data-status="sent"]', { timeout: 20_000 });
  const typingWhileHuman = await page.getByTestId('typing-indicator').count() > 0;
  await staff(base, sessionId, 'replies', {
    clientMessageId: crypto.randomUUID(),
    text: 'Hi, Ana here. Please clean the main brush.',
    agentName: 'Ana',
  });
  const human = {
    author: await text(page.getByTestId('human-author')),
    text: await text(page.getByTestId('message-human')),
  };

  await staff(base, sessionId, 'handback', { agentName: 'Ana' });
  const left = await text(page.locator('[data-testid="handoff-notice"][data-kind="left"]'));
  return finish(0, { chip: await text(chip), refused, joined, handler, human, typingWhileHuman, left });
}

main().catch((err) => finish(1, { error: String(err?.message ?? err).split('\n')[0] }));
