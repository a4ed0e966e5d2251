// The demo page on a phone-sized screen (390×844): one section at a time,
// switched from a bar, each section on screen and none overlapping another,
// the room list and the people reachable and readable, and a room switched
// and written to from there. And on a tablet (768×1024), every section at
// once, still without overlap.

import { after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../../src/index.js';
import {
  WAIT,
  accessibilityViolations,
  joinByForm,
  members,
  message,
  openPage,
  roomEntry,
  send,
  shoot,
  signIn,
  steps,
  useWorld,
} from './harness.js';

const world = useWorld();
const step = steps();
const PHONE = { width: 390, height: 844 };
const TABLET = { width: 768, height: 1024 };
/** The page's main boxes: the sections, and the parts of each. */
const BOXES = [
  '.topbar',
  '#views',
  '.rooms',
  '.rooms h2',
  '#room-list',
  '#join-form',
  '.members',
  '.members h2',
  '#member-list',
  '.conversation',
  '.conversation-head',
  '#messages',
  '#typing',
  '#composer',
  '.notifications',
];

/**
 * What is wrong with the layout of the boxes of `selectors` shown now: two
 * that overlap (a box and one inside it aside), one with no height, and
 * with `onScreen`, one that is not entirely on the screen. Empty when all
 * is well.
 */
function layoutProblems(page, selectors = BOXES, { onScreen = true } = {}) {
  return page.evaluate(
    ({ selectors, onScreen }) => {
      const shown = selectors
        .map((selector) => [selector, document.querySelector(selector)])
        .filter(([, node]) => node && node.getClientRects().length > 0)
        .map(([selector, node]) => [selector, node.getBoundingClientRect(), node]);
      const problems = [];
      for (const [selector, box] of shown) {
        if (box.height < 1) problems.push(`${selector} is ${box.height} px tall`);
        const inside = box.left >= 0 && box.top >= 0 && box.right <= innerWidth && box.bottom <= innerHeight;
        if (onScreen && !inside) problems.push(`${selector} is not all on screen (${JSON.stringify(box)})`);
      }
      for (let i = 0; i < shown.length; i += 1) {
        for (let j = i + 1; j < shown.length; j += 1) {
          const [[one, a, x], [other, b, y]] = [shown[i], shown[j]];
          if (x.contains(y) || y.contains(x)) continue;
          if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) problems.push(`${one} overlaps ${other}`);
        }
      }
      if (onScreen && document.documentElement.scrollWidth > innerWidth) problems.push('the page scrolls sideways');
      return problems;
    },
    { selectors, onScreen },
  );
}

/** Which of the main sections are shown now. */
function sectionsShown(page) {
  return page.evaluate((selectors) => selectors.filter((selector) => document.querySelector(selector)?.getClientRects().length > 0), [
    '.rooms',
    '.members',
    '.conversation',
    '.notifications',
  ]);
}

function section(page, name) {
  return page.locator('#views').getByRole('button', { name: new RegExp(`^${name}`) });
}

let phone;
/** Another person, on the client library: in the phone's rooms, writing to them. */
let bob;
after(() => bob?.close());

step('on a phone, the chat fills the screen and a bar leads to the other sections', { timeout: 60_000 }, async () => {
  bob = connect(world.relay.wsUrl('bob'));
  await bob.join('lobby');
  await bob.join('garden');
  phone = await openPage('ana', PHONE);
  await signIn(phone, 'ana');
  await members(phone, ['ana', 'bob']);
  await bob.send('lobby', { text: 'Morning ana, on your phone?' });
  await message(phone, 'on your phone?').waitFor(WAIT);

  assert.deepEqual(await layoutProblems(phone), []);
  assert.deepEqual(await sectionsShown(phone), ['.conversation']);
  assert.equal(await section(phone, 'Chat').getAttribute('aria-pressed'), 'true');
  assert.deepEqual(await accessibilityViolations(phone), []);
  await shoot(phone, '9-phone-chat');
});

step('on a phone, the room list opens with every room readable, and nothing overlaps', { timeout: 60_000 }, async () => {
  await section(phone, 'Rooms').click();
  assert.deepEqual(await sectionsShown(phone), ['.rooms']);
  assert.equal(await section(phone, 'Rooms').getAttribute('aria-pressed'), 'true');
  const lobby = roomEntry(phone, 'lobby');
  assert.ok(await lobby.isVisible());
  assert.ok((await phone.locator('#room-list').boundingBox()).height >= (await lobby.boundingBox()).height, 'the list shows its room');
  assert.deepEqual(await layoutProblems(phone), []);
  assert.ok(await phone.getByLabel('Join a room').isVisible());
  assert.deepEqual(await accessibilityViolations(phone), []);
  await shoot(phone, '9-phone-rooms');
});

step('on a phone, the people here open with their names in full', { timeout: 60_000 }, async () => {
  await section(phone, 'People').click();
  assert.deepEqual(await sectionsShown(phone), ['.members']);
  for (const user of ['ana', 'bob']) {
    const name = phone.locator(`#member-list li[data-user="${user}"] .member-name`);
    assert.ok(await name.isVisible(), `${user} is shown`);
    assert.equal(await name.textContent(), user);
    assert.ok(await name.evaluate((node) => node.scrollWidth <= node.clientWidth), `${user}'s name is not cut`);
  }
  assert.deepEqual(await layoutProblems(phone), []);
  await shoot(phone, '9-phone-people');

  await section(phone, 'Notifications').click();
  assert.deepEqual(await sectionsShown(phone), ['.notifications']);
  assert.deepEqual(await layoutProblems(phone), []);
});

step('on a phone, a person joins a room, switches rooms and writes in each', { timeout: 60_000 }, async () => {
  await section(phone, 'Rooms').click();
  await joinByForm(phone, 'garden');
  // Joining goes back to the chat, in the new room.
  assert.deepEqual(await sectionsShown(phone), ['.conversation']);
  await send(phone, 'Hello garden, from a phone');
  await message(phone, 'Hello garden, from a phone').waitFor(WAIT);

  await section(phone, 'Rooms').click();
  await roomEntry(phone, 'lobby').locator('.room').click();
  await phone.getByRole('heading', { name: '#lobby' }).waitFor(WAIT);
  assert.deepEqual(await sectionsShown(phone), ['.conversation']);
  await message(phone, 'on your phone?').waitFor(WAIT);
  await send(phone, 'Yes, and it works');
  await message(phone, 'Yes, and it works').waitFor(WAIT);
  assert.deepEqual(await layoutProblems(phone), []);
  await holds(bob, 'lobby', 'Yes, and it works');

  // Something new in the other room: the bar says so without leaving the chat.
  await bob.send('garden', { text: 'The roses are out' });
  await phone.locator('#views button[data-view="rooms"]', { hasText: '1' }).waitFor(WAIT);
  assert.match(await section(phone, 'Rooms').textContent(), /1 unread/);
  await shoot(phone, '9-phone-unread');
});

/** Resolves once `client` holds a message with `text` in `room`. */
function holds(client, room, text) {
  const held = () => client.messages(room).some((kept) => kept.body?.text === text);
  if (held()) return Promise.resolve();
  return new Promise((resolve) => {
    const off = client.on('message', () => {
      if (!held()) return;
      off();
      resolve();
    });
  });
}

step('on a tablet, every section is shown at once, without the bar, and none overlaps', { timeout: 60_000 }, async () => {
  const tablet = await openPage('ana (tablet)', TABLET);
  await signIn(tablet, 'ana');
  await members(tablet, ['ana', 'bob']);
  assert.deepEqual(await sectionsShown(tablet), ['.rooms', '.members', '.conversation', '.notifications']);
  assert.equal(await tablet.locator('#views').isVisible(), false);
  // The page scrolls down to the notifications here, so not all is on screen at once.
  assert.deepEqual(await layoutProblems(tablet, BOXES, { onScreen: false }), []);
  await tablet.context().close();
  await phone.context().close();
});

step('no page reported an error', {}, () => {
  assert.deepEqual(world.pageErrors, []);
});
