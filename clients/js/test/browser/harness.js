// What the browser tests of the demo page share: a database, a relay and a
// headless Chromium per test file, pages that report their errors, and the
// steps a person takes on the page (sign in, send, join a room…). Not a
// test file itself (the runner takes test/browser/*.test.js).

import { after, before, test } from 'node:test';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startDatabase } from '../support/database.js';
import { artifactsDir } from '../support/paths.js';
import { Relay } from '../support/relay.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Headless without a sandbox (the test runs as root in CI) and without any
// network traffic of the browser's own.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const WAIT = { timeout: 20_000 };
export const DESKTOP = { width: 1280, height: 760 };

/** The file's database, relay and browser (set in `before`), and the errors its pages reported. */
export const world = { database: null, relay: null, browser: null, pageErrors: [] };

/** Starts the world before the file's tests and stops it after. */
export function useWorld() {
  before(async () => {
    mkdirSync(artifactsDir, { recursive: true });
    world.database = await startDatabase();
    world.relay = await Relay.start(world.database.uri);
    world.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await world.browser?.close();
    await world.relay?.close();
    await world.database?.stop();
  });
  return world;
}

/** A browser of its own: separate localStorage, like another person's computer. */
export function newBrowser(viewport = DESKTOP) {
  return world.browser.newContext({ viewport, deviceScaleFactor: 1 });
}

export async function openPage(user, viewport) {
  return openTab(await newBrowser(viewport), user);
}

/** Another tab of the same browser: it shares localStorage, so it signs in as the same person. */
export async function openTab(context, user, url = world.relay.httpUrl) {
  const page = await context.newPage();
  watch(page, user);
  await page.goto(url);
  return page;
}

/** Collects the page's errors in world.pageErrors. */
export function watch(page, user) {
  page.on('pageerror', (error) => world.pageErrors.push(`${user}: ${error.message}`));
  page.on('console', (message) => {
    // Chromium logs every refused connection while the relay is down: the
    // WebSockets, and the SSE streams the client tries after two of them.
    const refused = /WebSocket connection to .* failed|net::ERR_CONNECTION_REFUSED/;
    if (message.type() === 'error' && !refused.test(message.text())) {
      world.pageErrors.push(`${user}: ${message.text()}`);
    }
  });
}

export async function signIn(page, user) {
  await page.getByRole('textbox', { name: 'User name' }).fill(user);
  await page.getByLabel('First room').fill('lobby');
  await page.getByRole('button', { name: 'Connect' }).click();
  await connected(page);
}

export function connected(page) {
  return page.locator('#connection[data-state="open"]').waitFor(WAIT);
}

export function message(page, text) {
  return page.locator('#messages li[data-seq]', { hasText: text });
}

export async function send(page, text) {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByLabel('Message', { exact: true }).press('Enter');
}

export async function shoot(page, name) {
  await page.screenshot({ path: path.join(artifactsDir, `${name}.png`) });
}

const axe = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/** WCAG 2 A and AA failures axe-core finds on the page as it is now. */
export async function accessibilityViolations(page) {
  await page.addScriptTag({ path: axe });
  const { violations } = await page.evaluate(() =>
    globalThis.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }),
  );
  return violations.map(({ id, impact, nodes }) => `${id} (${impact}): ${nodes.map((node) => node.target.join(' ')).join(', ')}`);
}

/** The texts of the stored messages shown, in page order. */
export function shownTexts(page) {
  return page.locator('#messages li[data-seq] .body').allTextContents();
}

/** A room's entry in the room list, and its unread badge. */
export function roomEntry(page, room) {
  return page.locator(`#room-list li[data-room="${room}"]`);
}
export function badge(page, room) {
  return roomEntry(page, room).locator('.unread');
}

/** Resolves once the page lists exactly `users` as present in the room shown. */
export function members(page, users) {
  const listed = (expected) =>
    JSON.stringify([...document.querySelectorAll('#member-list li')].map((item) => item.dataset.user)) === JSON.stringify(expected);
  return page.waitForFunction(listed, users, WAIT);
}

/**
 * Types into the message box a key at a time, as a person does, until
 * `shown` appears (on another page), then leaves `text` in the box. A
 * typing frame goes at most every 2 s, so the first keys may not be the
 * ones that are passed on.
 */
export async function typeUntil(page, text, shown) {
  const draft = page.getByLabel('Message', { exact: true });
  await draft.fill('');
  for (let key = 0; ; key += 1) {
    await draft.pressSequentially(text[key % text.length]);
    try {
      await shown.waitFor({ timeout: 200 });
      break;
    } catch (error) {
      if (key * 200 > WAIT.timeout) throw error;
    }
  }
  await draft.fill(text);
}

export async function joinByForm(page, room) {
  await page.getByLabel('Join a room').fill(room);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.getByRole('heading', { name: `#${room}` }).waitFor(WAIT);
}

/**
 * A `step(name, options, body)` for tests that build on each other: after
 * a failure the rest are skipped, not failed again.
 */
export function steps() {
  let broken = false;
  return function step(name, options, body) {
    test(name, options, async (t) => {
      if (broken) return t.skip('an earlier step failed');
      try {
        await body(t);
      } catch (error) {
        broken = true;
        throw error;
      }
    });
  };
}
