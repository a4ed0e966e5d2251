// The demo page (web/) in a real headless Chromium, served by a real relay
// on a real database: two people chat, edit and delete (once confirmed),
// one reloads, notifications reach the right page only, a relay restart
// loses nothing, reading a room in one tab clears its badge in the others
// and joining one adds it to them, older messages load a page at a time
// inside the scrolled history, a body another program changes is marked,
// each page shows who is in the room and who is typing, and behind a proxy
// that blocks WebSocket the page chats over SSE. Screenshots of each stage
// go to test/artifacts/. details.test.js and phone.test.js test the rest.

import assert from 'node:assert/strict';
import { connect } from '../../src/index.js';
import { HttpProxy } from '../support/proxy.js';
import {
  WAIT,
  accessibilityViolations,
  badge,
  connected,
  joinByForm,
  members,
  message,
  newBrowser,
  openPage,
  openTab,
  roomEntry,
  send,
  shoot,
  shownTexts,
  signIn,
  steps,
  typeUntil,
  useWorld,
} from './harness.js';

const world = useWorld();
const step = steps();
const pages = {};

step('the relay serves the demo page and the client module', {}, async () => {
  const page = await openPage('alice');
  pages.alice = page;
  await page.getByRole('heading', { name: 'Join the conversation' }).waitFor(WAIT);
  await shoot(page, '0-sign-in');
  assert.deepEqual(await accessibilityViolations(page), []);
  const library = await page.request.get(`${world.relay.httpUrl}/roomcast-client/index.js`);
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

step('you edit and delete your own messages, deleting only once you confirm, and others see it', { timeout: 60_000 }, async () => {
  const { alice, bob } = pages;
  // The buttons name a message by what you see of it, not by its seq (shown nowhere).
  assert.equal(await alice.getByRole('button', { name: /message \d/ }).count(), 0);
  await alice.getByRole('button', { name: 'Edit “Hello bob!”' }).click();
  await alice.getByLabel('Edit message', { exact: true }).fill('Hello bob! Welcome to roomcast.');
  await alice.getByRole('button', { name: 'Save' }).click();
  await message(bob, 'Welcome to roomcast.').locator('.edited').waitFor(WAIT);

  await send(alice, 'oops, wrong room');
  await message(bob, 'oops, wrong room').waitFor(WAIT);
  const seq = await message(alice, 'oops, wrong room').getAttribute('data-seq');
  const deletedOnBob = bob.locator(`#messages li[data-seq="${seq}"] .body.deleted`);
  // Delete asks first, with the safe choice focused; Cancel deletes nothing.
  await alice.getByRole('button', { name: 'Delete “oops, wrong room”' }).click();
  const question = alice.getByRole('group', { name: 'Delete this message for everyone?' });
  await question.waitFor(WAIT);
  const cancel = question.getByRole('button', { name: 'Cancel' });
  assert.ok(await cancel.evaluate((button) => button === document.activeElement), 'Cancel has the focus');
  await cancel.click();
  await question.waitFor({ state: 'detached', ...WAIT });
  // alice's frames are handled in order: had the delete gone, bob would have it before this message.
  await send(alice, 'never mind, right room');
  await message(bob, 'never mind, right room').waitFor(WAIT);
  assert.equal(await deletedOnBob.count(), 0, 'not deleted');
  // Escape cancels too.
  await alice.getByRole('button', { name: 'Delete “oops, wrong room”' }).click();
  await question.getByRole('button', { name: 'Cancel' }).press('Escape');
  await question.waitFor({ state: 'detached', ...WAIT });

  await alice.getByRole('button', { name: 'Delete “oops, wrong room”' }).click();
  await question.getByRole('button', { name: 'Yes, delete' }).click();
  await deletedOnBob.waitFor(WAIT);
  assert.equal(await message(bob, 'oops').count(), 0);
  // Only your own messages can be changed.
  assert.equal(await bob.getByRole('button', { name: 'Edit “Hello bob!' }).count(), 0);
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
  const notifications = world.relay.collection('notifications');
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
  const notifications = world.relay.collection('notifications');
  await world.relay.stop('SIGTERM');
  for (const page of [alice, bob]) await page.locator('#connection[data-state="waiting"]').waitFor(WAIT);
  // While the relay is down: alice writes, and bob gets a notification.
  await send(alice, 'Are you still there?');
  await alice.locator('#messages li.pending', { hasText: 'Are you still there?' }).waitFor(WAIT);
  await notifications.insertOne({ user: 'bob', kind: 'deploy', text: 'relay restarted', at: new Date() });
  await shoot(alice, '3-offline');

  await world.relay.start();
  await Promise.all([connected(alice), connected(bob)]);
  // Presence starts again from the new connection's snapshot.
  await members(alice, ['alice', 'bob']);
  await message(bob, 'Are you still there?').waitFor(WAIT);
  await message(alice, 'Are you still there?').waitFor(WAIT);
  await alice.locator('#messages li.pending').waitFor({ state: 'detached', ...WAIT });
  await send(bob, 'Yes! Nothing was lost.');
  await message(alice, 'Nothing was lost').waitFor(WAIT);
  await message(bob, 'Nothing was lost').waitFor(WAIT);
  const shown = await shownTexts(alice);
  assert.deepEqual(shown, await shownTexts(bob));
  assert.equal(shown.filter((text) => text === 'Are you still there?').length, 1, 'sent once');
  const stored = await world.relay.collection('messages').countDocuments({ room: 'lobby' });
  assert.equal(shown.length, stored, 'every stored message shown, once');
});

step('a notification sent while the relay was down reaches its page after the restart', {}, async () => {
  const { bob } = pages;
  // The new relay process reads it from MongoDB's own history, so the page
  // has nothing to fetch again nor to apologise for. (Had it answered
  // `recovered: false`, the notice would show in the same task as the
  // notification fetched again: details.test.js tests that.)
  await bob.locator('.notification', { hasText: 'relay restarted' }).waitFor(WAIT);
  assert.equal(await bob.locator('#notification-notice').isVisible(), false);
  assert.equal(await bob.locator('.notification', { hasText: 'relay restarted' }).count(), 1, 'once');
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
  await world.relay.collection('notifications').insertOne({ user: 'alice', kind: 'mention', text: 'bob mentioned you in #design', at: new Date() });
  await alice.locator('.notification', { hasText: 'bob mentioned you' }).waitFor(WAIT);
  await alice.locator('#draft').fill('Looks great, merging now');
  // Someone on another client is typing in the room alice reads.
  const carol = connect(world.relay.wsUrl('carol'));
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
  pages.danaSecond = second;
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

step('a room joined or left in one tab is joined or left within a second in the same person’s other tabs', { timeout: 60_000 }, async () => {
  const { bob, dana: first, danaSecond: second } = pages;
  await joinByForm(bob, 'garden');
  await send(bob, 'The tomatoes are in.');
  await message(bob, 'The tomatoes are in.').waitFor(WAIT);

  await first.getByLabel('Join a room').fill('garden');
  await first.getByRole('button', { name: 'Join', exact: true }).click();
  // Within a second of the click, in a tab that was not touched nor reloaded.
  await roomEntry(second, 'garden').waitFor({ timeout: 1000 });
  await first.getByRole('heading', { name: '#garden' }).waitFor(WAIT);
  await second.getByRole('heading', { name: '#lobby' }).waitFor(WAIT);
  // Read in the first tab.
  await message(first, 'The tomatoes are in.').waitFor(WAIT);
  // Its unread count follows the room from then on, in both tabs: 1, not
  // 2, so the second tab knows what the first read.
  await roomEntry(first, 'lobby').locator('.room').click();
  await first.getByRole('heading', { name: '#lobby' }).waitFor(WAIT);
  await send(bob, 'And the basil.');
  await badge(second, 'garden').getByText('1', { exact: true }).waitFor(WAIT);
  await badge(first, 'garden').getByText('1', { exact: true }).waitFor(WAIT);
  // Kept across a reload of the second tab: it saved the room too.
  await second.reload();
  await connected(second);
  await badge(second, 'garden').getByText('1', { exact: true }).waitFor(WAIT);

  await first.getByRole('button', { name: 'Leave garden' }).click();
  await roomEntry(second, 'garden').waitFor({ state: 'detached', timeout: 1000 });
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
  await world.relay.collection('messages').insertMany(
    Array.from({ length: 160 }, (_, i) => ({ room: 'archive', seq: i + 1, author: 'bot', body: { text: `archive ${i + 1}` }, sent_at: new Date(start + i * 1000) })),
  );
  await joinByForm(page, 'archive');
  const list = page.locator('#messages');
  const item = (seq) => list.locator(`li[data-seq="${seq}"]`);
  await item(160).waitFor(WAIT);
  await item(61).waitFor(WAIT);
  assert.equal(await item(60).count(), 0, 'the join fetched the last 100');
  await page.getByRole('button', { name: 'Load older messages' }).waitFor(WAIT);
  // The edge of the history is the list's first item, so it scrolls with the messages.
  const inList = (node) => node.closest('#messages') !== null;
  assert.ok(await page.getByRole('button', { name: 'Load older messages' }).evaluate(inList), 'Load older messages is in the list');
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
  const roomStart = page.getByText('This is the start of #archive.');
  await roomStart.waitFor(WAIT);
  assert.equal(await page.getByRole('button', { name: 'Load older messages' }).count(), 0);
  const seqs = await list.locator('li[data-seq]').evaluateAll((nodes) => nodes.map((node) => Number(node.dataset.seq)));
  assert.deepEqual(seqs, Array.from({ length: 160 }, (_, i) => i + 1), 'every message once, in order');
  // One day, so one separator, right after the edge, whatever pages were put above it.
  const firstItems = await list.locator(':scope > li').evaluateAll((nodes) => nodes.slice(0, 3).map((node) => node.className || node.dataset.seq));
  assert.deepEqual(firstItems, ['history-edge', 'day', 'message']);
  assert.equal(await list.locator('li.day').count(), 1);

  // Seen at the top; scrolled back down to the newest, it is gone with the old messages.
  const visible = (node) => {
    const shown = node.getBoundingClientRect();
    const box = node.closest('#messages')?.getBoundingClientRect();
    return Boolean(box) && shown.bottom > box.top && shown.top < box.bottom;
  };
  assert.ok(await roomStart.evaluate(inList), 'the start of the room is in the list');
  await list.evaluate((node) => (node.scrollTop = 0));
  assert.ok(await roomStart.evaluate(visible), 'seen at the top');
  await list.evaluate((node) => (node.scrollTop = node.scrollHeight));
  assert.equal(await roomStart.evaluate(visible), false, 'scrolled away with the messages');
});

step('messages a moderation tool deletes or replaces in MongoDB change in place', { timeout: 60_000 }, async () => {
  const page = pages.dana;
  const item = (seq) => page.locator(`#messages li[data-seq="${seq}"]`);
  const messages = world.relay.collection('messages');
  await messages.deleteOne({ room: 'archive', seq: 150 });
  await item(150).locator('.body.deleted', { hasText: 'Message deleted' }).waitFor(WAIT);
  assert.equal(await item(150).locator('.author').textContent(), 'bot', 'the author stays');
  assert.ok(await item(150).locator('time').count(), 'and the time');
  const original = await messages.findOne({ room: 'archive', seq: 151 });
  assert.equal(original.edited_at, undefined);
  await messages.replaceOne({ _id: original._id }, { ...original, body: { text: '[removed by a moderator]' } });
  await item(151).locator('.body', { hasText: '[removed by a moderator]' }).waitFor(WAIT);
  // The document has no edited_at, and the reader still sees the text changed.
  await item(151).locator('.edited').waitFor(WAIT);
  assert.equal(await item(152).locator('.edited').count(), 0, 'only the changed one');

  // Changed while another room is shown: marked when this one is shown again.
  await roomEntry(page, 'lobby').locator('.room').click();
  await page.getByRole('heading', { name: '#lobby' }).waitFor(WAIT);
  const other = await messages.findOne({ room: 'archive', seq: 152 });
  await messages.replaceOne({ _id: other._id }, { ...other, body: { text: 'archive 152, corrected' } });
  await roomEntry(page, 'archive').locator('.room').click();
  await item(152).locator('.body', { hasText: 'archive 152, corrected' }).waitFor(WAIT);
  await item(152).locator('.edited').waitFor(WAIT);
  await item(151).locator('.edited').waitFor(WAIT);
  const seqs = await page.locator('#messages li[data-seq]').evaluateAll((nodes) => nodes.map((node) => Number(node.dataset.seq)));
  assert.equal(seqs.length, 160, 'each still shown once');
});

step('behind a proxy that blocks WebSocket, the page chats over SSE and says so', { timeout: 60_000 }, async () => {
  const { alice } = pages;
  // As a corporate proxy does: plain HTTP passes, WebSocket upgrades are refused.
  const proxy = await HttpProxy.start(world.relay, { upgrades: 'refuse' });
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
  assert.deepEqual(world.pageErrors, []);
});
