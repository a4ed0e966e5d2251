// The demo page (web/) in a real headless Chromium, served by a real relay
// on a real database: two people chat, one reloads, notifications reach the
// right page only, a relay restart loses nothing, reading a room in one tab
// clears its badge in the others, older messages and notifications load a
// page at a time, each page shows who is in the room and who is typing, and
// behind a proxy that blocks WebSocket the page chats over SSE. Screenshots
// of each stage go to test/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { connect } from '../../src/index.js';
import { startDatabase } from '../support/database.js';
import { JWT_ENV, token } from '../support/jwt.js';
import { artifactsDir } from '../support/paths.js';
import { HttpProxy } from '../support/proxy.js';
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
const WAIT = { timeout: 20_000 };

let database;
let relay;
let browser;
const pages = {};
const pageErrors = [];

async function openPage(user) {
  // A context per person: separate localStorage, like two browsers.
  return openTab(await newBrowser(), user);
}

function newBrowser() {
  return browser.newContext({ viewport: { width: 1280, height: 760 }, deviceScaleFactor: 1 });
}

/** Another tab of the same browser: it shares localStorage, so it signs in as the same person. */
async function openTab(context, user, url = relay.httpUrl) {
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(`${user}: ${error.message}`));
  page.on('console', (message) => {
    // Chromium logs every refused connection while the relay is down: the
    // WebSockets, and the SSE streams the client tries after two of them.
    const refused = /WebSocket connection to .* failed|net::ERR_CONNECTION_REFUSED/;
    if (message.type() === 'error' && !refused.test(message.text())) {
      pageErrors.push(`${user}: ${message.text()}`);
    }
  });
  await page.goto(url);
  return page;
}

async function signIn(page, user) {
  await page.getByRole('textbox', { name: 'User name' }).fill(user);
  await page.getByLabel('First room').fill('lobby');
  await page.getByRole('button', { name: 'Connect' }).click();
  await connected(page);
}

function connected(page) {
  return page.locator('#connection[data-state="open"]').waitFor(WAIT);
}

function message(page, text) {
  return page.locator('#messages li[data-seq]', { hasText: text });
}

async function send(page, text) {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByLabel('Message', { exact: true }).press('Enter');
}

async function shoot(page, name) {
  await page.screenshot({ path: path.join(artifactsDir, `${name}.png`) });
}

const axe = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/** WCAG 2 A and AA failures axe-core finds on the page as it is now. */
async function accessibilityViolations(page) {
  await page.addScriptTag({ path: axe });
  const { violations } = await page.evaluate(() =>
    globalThis.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }),
  );
  return violations.map(({ id, impact, nodes }) => `${id} (${impact}): ${nodes.map((node) => node.target.join(' ')).join(', ')}`);
}

/** The texts of the stored messages shown, in page order. */
function shownTexts(page) {
  return page.locator('#messages li[data-seq] .body').allTextContents();
}

/** A room's entry in the room list, and its unread badge. */
function roomEntry(page, room) {
  return page.locator(`#room-list li[data-room="${room}"]`);
}
function badge(page, room) {
  return roomEntry(page, room).locator('.unread');
}

/** Resolves once the page lists exactly `users` as present in the room shown. */
function members(page, users) {
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
async function typeUntil(page, text, shown) {
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

async function joinByForm(page, room) {
  await page.getByLabel('Join a room').fill(room);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.getByRole('heading', { name: `#${room}` }).waitFor(WAIT);
}

/** The steps build on each other: after a failure, the rest are skipped, not failed again. */
let broken = false;
function step(name, options, body) {
  test(name, options, async (t) => {
    if (broken) return t.skip('an earlier step failed');
    try {
      await body(t);
    } catch (error) {
      broken = true;
      throw error;
    }
  });
}

before(async () => {
  mkdirSync(artifactsDir, { recursive: true });
  database = await startDatabase();
  relay = await Relay.start(database.uri);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await relay?.close();
  await database?.stop();
});

step('the relay serves the demo page and the client module', {}, async () => {
  const page = await openPage('alice');
  pages.alice = page;
  await page.getByRole('heading', { name: 'Join the conversation' }).waitFor(WAIT);
  await shoot(page, '0-sign-in');
  assert.deepEqual(await accessibilityViolations(page), []);
  const library = await page.request.get(`${relay.httpUrl}/roomcast-client/index.js`);
  assert.equal(library.status(), 200);
  assert.match(library.headers()['content-type'], /javascript/);
});

step('two people chat in a room', { timeout: 60_000 }, async () => {
  await signIn(pages.alice, 'alice');
  pages.bob = await openPage('bob');
  await signIn(pages.bob, 'bob');
  for (const page of [pages.alice, pages.bob]) {
    await page.locator('#connection[data-transport="websocket"]').waitFor(WAIT);
    assert.equal(await page.locator('#connection-transport').textContent(), 'via WebSocket');
  }

  await send(pages.alice, 'Hello bob!');
  await message(pages.bob, 'Hello bob!').waitFor(WAIT);
  await send(pages.bob, 'Hi alice, how is the relay doing?');
  await message(pages.alice, 'how is the relay doing').waitFor(WAIT);
  await send(pages.alice, 'Every message goes through MongoDB first.');
  await message(pages.bob, 'goes through MongoDB').waitFor(WAIT);
  assert.deepEqual(await shownTexts(pages.alice), await shownTexts(pages.bob));
});

step('each sees who is in the room, and who else is typing', { timeout: 60_000 }, async () => {
  const { alice, bob } = pages;
  await members(alice, ['alice', 'bob']);
  await members(bob, ['alice', 'bob']);
  await bob.locator('#member-list li[data-user="bob"]', { hasText: '(you)' }).waitFor(WAIT);
  await alice.getByRole('heading', { name: 'People here (2)' }).waitFor(WAIT);

  await typeUntil(bob, 'Typing a reply', alice.locator('#typing', { hasText: 'bob is typing…' }));
  await typeUntil(alice, 'Me too!', bob.locator('#typing', { hasText: 'alice is typing…' }));
  // Typing reaches a room in the order written: had bob's own typing come
  // back to his page, it would show before alice's.
  assert.equal(await bob.locator('#typing').textContent(), 'alice is typing…');
  await shoot(bob, '1-typing');
  // alice's message ends her typing on bob's page as it appears there.
  await alice.getByLabel('Message', { exact: true }).press('Enter');
  await message(bob, 'Me too!').waitFor(WAIT);
  assert.equal(await bob.locator('#typing').textContent(), '');
  await bob.getByLabel('Message', { exact: true }).press('Enter');
  await message(alice, 'Typing a reply').waitFor(WAIT);

  // Someone else comes, and closes the tab: gone from the list.
  const frank = await openPage('frank');
  await signIn(frank, 'frank');
  await members(alice, ['alice', 'bob', 'frank']);
  await members(frank, ['alice', 'bob', 'frank']);
  await frank.context().close();
  await members(alice, ['alice', 'bob']);
});

step('you edit and delete your own messages, and others see it', { timeout: 60_000 }, async () => {
  const { alice, bob } = pages;
  await alice.getByRole('button', { name: 'Edit message 1' }).click();
  await alice.getByLabel('Edit message', { exact: true }).fill('Hello bob! Welcome to roomcast.');
  await alice.getByRole('button', { name: 'Save' }).click();
  await message(bob, 'Welcome to roomcast.').locator('.edited').waitFor(WAIT);

  await send(alice, 'oops, wrong room');
  await message(bob, 'oops, wrong room').waitFor(WAIT);
  const seq = await message(alice, 'oops, wrong room').getAttribute('data-seq');
  await alice.getByRole('button', { name: `Delete message ${seq}` }).click();
  await bob.locator(`#messages li[data-seq="${seq}"] .body.deleted`).waitFor(WAIT);
  assert.equal(await message(bob, 'oops').count(), 0);
  // Only your own messages can be changed.
  assert.equal(await bob.getByRole('button', { name: 'Edit message 1' }).count(), 0);
  await shoot(bob, '1-chat');
});

step('a reloaded page shows the history', { timeout: 60_000 }, async () => {
  const { alice, bob } = pages;
  const before = await shownTexts(bob);
  await bob.reload();
  await connected(bob);
  await message(bob, 'Welcome to roomcast.').waitFor(WAIT);
  await bob.locator('#messages li[data-seq] .body.deleted').waitFor(WAIT);
  assert.deepEqual(await shownTexts(bob), before);
  assert.deepEqual(await shownTexts(bob), await shownTexts(alice));
});

step('a notification inserted into MongoDB appears on its user’s page only', { timeout: 60_000 }, async () => {
  const { alice, bob } = pages;
  const notifications = relay.collection('notifications');
  await notifications.insertOne({ user: 'bob', kind: 'mention', text: 'alice mentioned you in #lobby', at: new Date() });
  await bob.locator('.notification', { hasText: 'alice mentioned you' }).waitFor(WAIT);
  // Inserted after bob's: by the time alice has hers, bob's would have reached her.
  await notifications.insertOne({ user: 'alice', kind: 'invite', text: 'bob invited you to #design', at: new Date() });
  await alice.locator('.notification', { hasText: 'bob invited you' }).waitFor(WAIT);
  assert.equal(await alice.locator('.notification', { hasText: 'mentioned you' }).count(), 0);
  assert.equal(await bob.locator('.notification', { hasText: 'invited you' }).count(), 0);
  await shoot(bob, '2-notification');
});

step('a relay restart: both pages recover without loss', { timeout: 90_000 }, async () => {
  const { alice, bob } = pages;
  const notifications = relay.collection('notifications');
  await relay.stop('SIGTERM');
  for (const page of [alice, bob]) await page.locator('#connection[data-state="waiting"]').waitFor(WAIT);
  // While the relay is down: alice writes, and bob gets a notification.
  await send(alice, 'Are you still there?');
  await alice.locator('#messages li.pending', { hasText: 'Are you still there?' }).waitFor(WAIT);
  await notifications.insertOne({ user: 'bob', kind: 'deploy', text: 'relay restarted', at: new Date() });
  await shoot(alice, '3-offline');

  await relay.start();
  await Promise.all([connected(alice), connected(bob)]);
  // Presence starts again from the new connection's snapshot.
  await members(alice, ['alice', 'bob']);
  await message(bob, 'Are you still there?').waitFor(WAIT);
  await message(alice, 'Are you still there?').waitFor(WAIT);
  await alice.locator('#messages li.pending').waitFor({ state: 'detached', ...WAIT });
  // A new relay process cannot replay what it never saw, and says so.
  await bob.locator('#notification-notice', { hasText: 'could not all be recovered' }).waitFor(WAIT);

  await send(bob, 'Yes! Nothing was lost.');
  await message(alice, 'Nothing was lost').waitFor(WAIT);
  await message(bob, 'Nothing was lost').waitFor(WAIT);
  const shown = await shownTexts(alice);
  assert.deepEqual(shown, await shownTexts(bob));
  assert.equal(shown.filter((text) => text === 'Are you still there?').length, 1, 'sent once');
  const stored = await relay.collection('messages').countDocuments({ room: 'lobby' });
  assert.equal(shown.length, stored, 'every stored message shown, once');
});

step('notifications missed during the restart are fetched again', {}, async () => {
  await pages.bob.locator('.notification', { hasText: 'relay restarted' }).waitFor(WAIT);
  await pages.bob.locator('#notification-notice', { hasText: 'The latest were fetched again.' }).waitFor(WAIT);
});

step('other rooms count unread messages', { timeout: 60_000 }, async () => {
  const { alice, bob } = pages;
  await alice.getByLabel('Join a room').fill('design');
  await alice.getByRole('button', { name: 'Join', exact: true }).click();
  await alice.getByRole('heading', { name: '#design' }).waitFor(WAIT);
  await alice.getByRole('button', { name: 'lobby', exact: true }).click();
  await bob.getByLabel('Join a room').fill('design');
  await bob.getByRole('button', { name: 'Join', exact: true }).click();
  await bob.getByRole('heading', { name: '#design' }).waitFor(WAIT);
  await send(bob, 'The new logo is ready for review.');
  await alice.getByLabel('1 unread').waitFor(WAIT);
  await relay.collection('notifications').insertOne({ user: 'alice', kind: 'mention', text: 'bob mentioned you in #design', at: new Date() });
  await alice.locator('.notification', { hasText: 'bob mentioned you' }).waitFor(WAIT);
  await alice.getByRole('button', { name: 'Dismiss' }).click();
  await alice.locator('#draft').fill('Looks great, merging now');
  // Someone on another client is typing in the room alice reads.
  const carol = connect(relay.wsUrl('carol'));
  try {
    await carol.join('lobby');
    await members(alice, ['alice', 'bob', 'carol']);
    carol.typing('lobby');
    await alice.locator('#typing', { hasText: 'carol is typing…' }).waitFor(WAIT);
    await shoot(alice, 'demo');
  } finally {
    carol.close();
  }
  await members(alice, ['alice', 'bob']);
});

step('reading a room in one tab clears its badge in the other tabs of the same person', { timeout: 60_000 }, async () => {
  const danasBrowser = await newBrowser();
  const first = await openTab(danasBrowser, 'dana');
  await signIn(first, 'dana');
  await joinByForm(first, 'design');
  // Shown, so read.
  await message(first, 'The new logo is ready for review.').waitFor(WAIT);
  await roomEntry(first, 'lobby').locator('.room').click();
  await first.getByRole('heading', { name: '#lobby' }).waitFor(WAIT);
  // The second tab signs in by itself, with the same rooms, and knows they were read.
  const second = await openTab(danasBrowser, 'dana (second tab)');
  await connected(second);
  await roomEntry(second, 'design').waitFor(WAIT);
  await badge(second, 'design').waitFor({ state: 'detached', ...WAIT });
  // The join fetched #lobby from its first message: nothing older to offer.
  await second.getByText('This is the start of #lobby.').waitFor(WAIT);
  assert.equal(await second.getByRole('button', { name: 'Load older messages' }).count(), 0);
  pages.dana = first;

  // bob is in #design since the step before.
  await send(pages.bob, 'Dana, the logo needs your review.');
  await badge(first, 'design').getByText('1').waitFor(WAIT);
  await badge(second, 'design').getByText('1').waitFor(WAIT);
  await shoot(second, '4-unread-in-both-tabs');

  await roomEntry(first, 'design').locator('.room').click();
  await message(first, 'the logo needs your review').waitFor(WAIT);
  // Only the relay's read marker can clear it: the second tab still shows #lobby.
  await badge(second, 'design').waitFor({ state: 'detached', ...WAIT });
  await second.getByRole('heading', { name: '#lobby' }).waitFor(WAIT);
  assert.equal(await badge(first, 'design').count(), 0);
});

step('a new device lists the rooms read on others', { timeout: 60_000 }, async () => {
  const laptop = await openPage('dana (new device)');
  await signIn(laptop, 'dana');
  await roomEntry(laptop, 'design').waitFor(WAIT);
  assert.equal(await badge(laptop, 'design').count(), 0, 'read on the other device');
  await laptop.context().close();
});

step('scrolling to the top loads older messages above, without moving the view', { timeout: 60_000 }, async () => {
  const page = pages.dana;
  const start = Date.now() - 200_000;
  await relay.collection('messages').insertMany(
    Array.from({ length: 160 }, (_, i) => ({ room: 'archive', seq: i + 1, author: 'bot', body: { text: `archive ${i + 1}` }, sent_at: new Date(start + i * 1000) })),
  );
  await joinByForm(page, 'archive');
  const list = page.locator('#messages');
  const item = (seq) => list.locator(`li[data-seq="${seq}"]`);
  await item(160).waitFor(WAIT);
  await item(61).waitFor(WAIT);
  assert.equal(await item(60).count(), 0, 'the join fetched the last 100');
  await page.getByRole('button', { name: 'Load older messages' }).waitFor(WAIT);
  assert.deepEqual(await accessibilityViolations(page), []);

  // In one task: scroll to the top and note where the oldest message shown sits.
  const before = await list.evaluate((node) => {
    node.scrollTop = 0;
    return node.querySelector('li[data-seq="61"]').getBoundingClientRect().top;
  });
  await item(11).waitFor(WAIT);
  const after = await item(61).evaluate((node) => node.getBoundingClientRect().top);
  assert.ok(Math.abs(after - before) < 2, `message 61 stayed in place (${before} → ${after})`);
  assert.equal(await item(10).count(), 0, 'one page of 50');

  await list.evaluate((node) => (node.scrollTop = 0));
  await item(1).waitFor(WAIT);
  await page.getByText('This is the start of #archive.').waitFor(WAIT);
  assert.equal(await page.getByRole('button', { name: 'Load older messages' }).count(), 0);
  const seqs = await list.locator('li[data-seq]').evaluateAll((nodes) => nodes.map((node) => Number(node.dataset.seq)));
  assert.deepEqual(seqs, Array.from({ length: 160 }, (_, i) => i + 1), 'every message once, in order');
});

step('messages a moderation tool deletes or replaces in MongoDB change in place', { timeout: 60_000 }, async () => {
  const page = pages.dana;
  const item = (seq) => page.locator(`#messages li[data-seq="${seq}"]`);
  const messages = relay.collection('messages');
  await messages.deleteOne({ room: 'archive', seq: 150 });
  await item(150).locator('.body.deleted', { hasText: 'Message deleted' }).waitFor(WAIT);
  assert.equal(await item(150).locator('.author').textContent(), 'bot', 'the author stays');
  assert.ok(await item(150).locator('time').count(), 'and the time');
  const original = await messages.findOne({ room: 'archive', seq: 151 });
  await messages.replaceOne({ _id: original._id }, { ...original, body: { text: '[removed by a moderator]' } });
  await item(151).locator('.body', { hasText: '[removed by a moderator]' }).waitFor(WAIT);
  const seqs = await page.locator('#messages li[data-seq]').evaluateAll((nodes) => nodes.map((node) => Number(node.dataset.seq)));
  assert.equal(seqs.length, 160, 'each still shown once');
});

step('older notifications load a page at a time', { timeout: 60_000 }, async () => {
  await relay.collection('notifications').insertMany(Array.from({ length: 25 }, (_, i) => ({ user: 'erin', text: `old news ${i + 1}` })));
  const page = await openPage('erin');
  await signIn(page, 'erin');
  const shown = page.locator('#notification-list .notification');
  assert.equal(await shown.count(), 0, 'sent before erin was here');
  await page.getByRole('button', { name: 'Load older notifications' }).click();
  await shown.nth(19).waitFor(WAIT);
  assert.equal(await shown.first().locator('.body').textContent(), 'old news 25', 'newest first');
  await page.getByRole('button', { name: 'Load older notifications' }).click();
  await page.getByText('No older notifications.').waitFor(WAIT);
  assert.equal(await shown.count(), 25);
  assert.equal(await shown.last().locator('.body').textContent(), 'old news 1');
  assert.equal(await page.getByRole('button', { name: 'Load older notifications' }).count(), 0);
  await page.context().close();
});

step('a room too large to list shows how many people are in it', { timeout: 60_000 }, async () => {
  const crowded = await Relay.start(database.uri, {
    env: {
      ROOMCAST__LIMITS__PRESENCE_MAX_LISTED: '1',
      ROOMCAST__PRESENCE__HEARTBEAT_INTERVAL: '200ms',
      ROOMCAST__PRESENCE__REPLICA_TIMEOUT: '2s',
    },
  });
  const contexts = [];
  try {
    for (const user of ['gina', 'hal']) {
      const context = await newBrowser();
      contexts.push(context);
      const page = await context.newPage();
      page.on('pageerror', (error) => pageErrors.push(`${user}: ${error.message}`));
      await page.goto(crowded.httpUrl);
      await signIn(page, user);
    }
    for (const context of contexts) {
      const page = context.pages()[0];
      await page.locator('#members-summary', { hasText: '2 people here' }).waitFor(WAIT);
      assert.equal(await page.locator('#member-list li').count(), 0, 'too many to list');
    }
    await shoot(contexts[0].pages()[0], '5-large-room');
  } finally {
    for (const context of contexts) await context.close();
    await crowded.close();
  }
});

step('behind a proxy that blocks WebSocket, the page chats over SSE and says so', { timeout: 60_000 }, async () => {
  const { alice } = pages;
  // As a corporate proxy does: plain HTTP passes, WebSocket upgrades are refused.
  const proxy = await HttpProxy.start(relay, { upgrades: 'refuse' });
  const context = await newBrowser();
  try {
    const ivan = await openTab(context, 'ivan', proxy.httpUrl);
    await signIn(ivan, 'ivan');
    await ivan.locator('#connection[data-transport="sse"]').waitFor(WAIT);
    assert.equal(await ivan.locator('#connection-transport').textContent(), 'via SSE');
    assert.equal(proxy.upgradesAsked, 2, 'two WebSocket tries, then SSE');

    // Presence goes both ways between the two transports.
    await ivan.locator('#member-list li[data-user="alice"]').waitFor(WAIT);
    await alice.locator('#member-list li[data-user="ivan"]').waitFor(WAIT);
    await send(ivan, 'Hello from behind a strict proxy');
    await message(alice, 'Hello from behind a strict proxy').waitFor(WAIT);
    await send(alice, 'Welcome, ivan: SSE works too.');
    await message(ivan, 'SSE works too.').waitFor(WAIT);
    await typeUntil(alice, 'Typing to ivan', ivan.locator('#typing', { hasText: 'alice is typing…' }));
    await alice.getByLabel('Message', { exact: true }).fill('');
    assert.ok(proxy.requests.some(({ method, path }) => method === 'POST' && path.startsWith('/sse/')), 'frames went up in POSTs');
    await shoot(ivan, '6-sse');
  } finally {
    await context.close();
    await proxy.close();
  }
  await alice.locator('#member-list li[data-user="ivan"]').waitFor({ state: 'detached', ...WAIT });
});

step('the chat page passes automated accessibility checks', {}, async () => {
  assert.deepEqual(await accessibilityViolations(pages.alice), []);
  assert.deepEqual(pageErrors, []);
});

step('a pasted token signs in as its subject', { timeout: 60_000 }, async () => {
  const secured = await Relay.start(database.uri, { env: JWT_ENV });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(secured.httpUrl);
    await page.getByRole('radio', { name: /token/ }).check();
    await page.getByRole('textbox', { name: 'Token' }).fill(token('carol', 600));
    await page.getByRole('button', { name: 'Connect' }).click();
    await connected(page);
    await page.locator('#identity-name', { hasText: 'carol' }).waitFor(WAIT);
    await send(page, 'signed in with a token');
    await message(page, 'signed in with a token').locator('.author', { hasText: 'carol' }).waitFor(WAIT);
    await context.close();
  } finally {
    await secured.close();
  }
});
