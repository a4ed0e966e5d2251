// The demo page's details, each on its own: day separators between the
// messages, what the page says about a room name it cannot take, hints
// that speak to a person before a developer, older notifications offered
// only when some exist and loaded a page at a time, fetched again after a
// restart the relay could not recover from, a room too large to list, and
// signing in with a token.

import assert from 'node:assert/strict';
import { JWT_ENV, token } from '../support/jwt.js';
import { Relay } from '../support/relay.js';
import {
  WAIT,
  accessibilityViolations,
  connected,
  joinByForm,
  message,
  newBrowser,
  openPage,
  send,
  shoot,
  signIn,
  steps,
  useWorld,
  watch,
} from './harness.js';

const world = useWorld();
const step = steps();

step('messages are grouped by day: a date, Yesterday, Today', { timeout: 60_000 }, async () => {
  const page = await openPage('mia');
  // Times of the page's own day, so the test does not depend on the time zone.
  const at = await page.evaluate(() => {
    const now = new Date();
    const local = (daysAgo, hours, minutes) =>
      new Date(now.getFullYear(), now.getMonth(), now.getDate() - daysAgo, hours, minutes).toISOString();
    return { older: local(12, 10, 0), afternoon: local(1, 16, 7), evening: local(1, 18, 30), early: local(0, 0, 0) };
  });
  await world.relay.collection('messages').insertMany([
    { room: 'diary', seq: 1, author: 'bot', body: { text: 'twelve days ago' }, sent_at: new Date(at.older) },
    { room: 'diary', seq: 2, author: 'bot', body: { text: 'yesterday at 4 PM' }, sent_at: new Date(at.afternoon) },
    { room: 'diary', seq: 3, author: 'bot', body: { text: 'yesterday evening' }, sent_at: new Date(at.evening) },
    { room: 'diary', seq: 4, author: 'bot', body: { text: 'today at midnight' }, sent_at: new Date(at.early) },
  ]);
  await signIn(page, 'mia');
  await joinByForm(page, 'diary');
  await message(page, 'today at midnight').waitFor(WAIT);
  await send(page, 'and now');
  await message(page, 'and now').waitFor(WAIT);

  const items = await page.locator('#messages > li:not(.history-edge)').evaluateAll((nodes) =>
    nodes.map((node) => (node.classList.contains('day') ? `[${node.textContent}]` : node.querySelector('.body').textContent)),
  );
  const olderDay = await page.locator('#messages li.day').first().textContent();
  assert.deepEqual(items, [
    `[${olderDay}]`,
    'twelve days ago',
    '[Yesterday]',
    'yesterday at 4 PM',
    'yesterday evening',
    '[Today]',
    'today at midnight',
    'and now',
  ]);
  // The older day is named by its date, which the separator also carries for machines.
  const twelveDaysAgo = new Date(at.older);
  assert.match(olderDay, new RegExp(`\\b${twelveDaysAgo.getDate()}\\b`));
  assert.doesNotMatch(olderDay, /Today|Yesterday/);
  const key = await page.locator('#messages li.day time').first().getAttribute('datetime');
  assert.equal(key, await page.evaluate((iso) => new Date(iso).toLocaleDateString('sv'), at.older), 'YYYY-MM-DD of the local day');
  assert.deepEqual(await accessibilityViolations(page), []);
  await shoot(page, '7-days');
  await page.context().close();
});

step('a room name the relay would refuse is explained by the page, naming the characters allowed', { timeout: 60_000 }, async () => {
  const page = await openPage('noor');
  await signIn(page, 'noor');
  const field = page.getByLabel('Join a room');
  const error = page.locator('#room-name-error');
  await field.fill('my room!');
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  // The browser's "Please match the requested format." would have stopped the form before the page saw it.
  await error.getByText('A-Z a-z 0-9 . _ : -').waitFor(WAIT);
  assert.match(await error.textContent(), /1 to 128 characters/);
  assert.match(await error.textContent(), /“my room!”/);
  assert.equal(await field.getAttribute('aria-invalid'), 'true');
  assert.match(await field.evaluate((node) => document.getElementById(node.getAttribute('aria-describedby')).textContent), /A-Z a-z/);
  assert.equal(await page.locator('#room-title').textContent(), '#lobby', 'no room joined');
  assert.deepEqual(await accessibilityViolations(page), []);
  await shoot(page, '8-room-name');

  // Typing again clears the complaint; a good name joins.
  await field.fill('my-room');
  assert.equal(await error.textContent(), '');
  assert.equal(await field.getAttribute('aria-invalid'), null);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.getByRole('heading', { name: '#my-room' }).waitFor(WAIT);

  // An empty name says the same.
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await error.getByText('Type a room name.').waitFor(WAIT);
  await page.context().close();
});

step('the sign-in form says which room names work, in the same words', { timeout: 60_000 }, async () => {
  const page = await openPage('omar');
  await page.getByRole('textbox', { name: 'User name' }).fill('omar');
  await page.getByLabel('First room').fill('the lobby');
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('#signin-error').getByText('A-Z a-z 0-9 . _ : -').waitFor(WAIT);
  await page.context().close();
});

/** The first sentence of an element's text. */
async function firstSentence(locator) {
  const text = (await locator.textContent()).replace(/\s+/g, ' ').trim();
  return { first: text.slice(0, text.indexOf('.') + 1), text };
}

step('hints speak to a person trying the demo first, and to developers after', { timeout: 60_000 }, async () => {
  const page = await openPage('pia');
  const help = await firstSentence(page.locator('#user-help'));
  assert.doesNotMatch(help.first, /auth|mode|relay/, help.text);
  assert.match(help.first, /any name/);
  assert.match(help.text, /auth\.mode: none/, 'still there for developers');

  await signIn(page, 'pia');
  const empty = await firstSentence(page.locator('#notifications-empty'));
  assert.equal(empty.first, 'Nothing yet.');
  const second = empty.text.slice(empty.first.length).trim();
  assert.match(second, /^Mentions, invitations and alerts meant for you show up here/);
  assert.ok(empty.text.indexOf('collection') > empty.text.indexOf('show up here'), 'the developer part comes after');
  assert.match(empty.text, /\{"user": "pia", "text": "…"\} into the notifications collection/);
  await page.context().close();
});

step('older notifications are offered only when some exist', { timeout: 60_000 }, async () => {
  const page = await openPage('kim');
  await signIn(page, 'kim');
  // The page asked the relay, and was told there are none.
  await page.locator('#notifications[data-older="no"]').waitFor({ state: 'attached', ...WAIT });
  assert.equal(await page.getByRole('button', { name: 'Load older notifications' }).count(), 0);
  await page.context().close();
});

step('older notifications load a page at a time', { timeout: 60_000 }, async () => {
  await world.relay.collection('notifications').insertMany(Array.from({ length: 25 }, (_, i) => ({ user: 'erin', text: `old news ${i + 1}` })));
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

step('when a restarted relay cannot recover notifications, the page fetches them again and says so', { timeout: 60_000 }, async () => {
  // No reading of MongoDB's history allowed: past its memory, the relay answers `recovered: false`.
  const relay = await Relay.start(world.database.uri, { env: { ROOMCAST__RECOVERY__MAX_SCANS: '0' } });
  const context = await newBrowser();
  try {
    const page = await context.newPage();
    watch(page, 'quinn');
    await page.goto(relay.httpUrl);
    await signIn(page, 'quinn');
    const notifications = relay.collection('notifications');
    await notifications.insertOne({ user: 'quinn', text: 'before the restart' });
    await page.locator('.notification', { hasText: 'before the restart' }).waitFor(WAIT);
    await relay.stop('SIGTERM');
    await page.locator('#connection[data-state="waiting"]').waitFor(WAIT);
    await notifications.insertOne({ user: 'quinn', text: 'while the relay was down' });
    await relay.start();
    await page.locator('.notification', { hasText: 'while the relay was down' }).waitFor(WAIT);
    const notice = page.locator('#notification-notice');
    assert.match(await notice.textContent(), /could not all be recovered.*The latest were fetched again\./);
    await notice.getByRole('button', { name: 'Dismiss' }).click();
    assert.equal(await notice.isVisible(), false);
  } finally {
    await context.close();
    await relay.close();
  }
});

step('a room too large to list shows how many people are in it', { timeout: 60_000 }, async () => {
  const crowded = await Relay.start(world.database.uri, {
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
      watch(page, user);
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

step('a pasted token signs in as its subject', { timeout: 60_000 }, async () => {
  const secured = await Relay.start(world.database.uri, { env: JWT_ENV });
  try {
    const context = await newBrowser();
    const page = await context.newPage();
    watch(page, 'carol (token)');
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

step('no page reported an error', {}, () => {
  assert.deepEqual(world.pageErrors, []);
});
