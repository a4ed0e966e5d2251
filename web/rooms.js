// The room list: each room with its unread count, the one shown marked
// current, a button to leave; and what a room name may be, said in the
// page's own words rather than the browser's "Please match the requested
// format.".

import { element } from './render.js';

const $ = (id) => document.getElementById(id);
/** As the relay and the library check it. */
export const ROOM_NAME = /^[A-Za-z0-9._:-]{1,128}$/;
const RULE = 'Room names are 1 to 128 characters, each one of A-Z a-z 0-9 . _ : - (no spaces).';

/** Why `name` cannot be a room name, or null when it can. */
export function roomNameProblem(name) {
  if (name === '') return `Type a room name. ${RULE}`;
  return ROOM_NAME.test(name) ? null : `“${name}” cannot be a room name. ${RULE}`;
}

/**
 * `page` gives client(), saved() (rooms and the current one), select(room),
 * leave(room) and unreadElsewhere(count), told the total of the rooms not shown.
 */
export function roomList(page) {
  /** The unread count of a room other than the one shown, from the user's read marker. */
  function unread(room) {
    return room === page.saved().current ? 0 : page.client().room(room).unread;
  }

  function badge(room) {
    const count = unread(room);
    return count ? element('span', { class: 'unread', 'aria-label': `${count} unread` }, String(count)) : null;
  }

  function total() {
    page.unreadElsewhere(page.saved().rooms.reduce((sum, room) => sum + unread(room), 0));
  }

  /** Updates one room's badge in place, so focus in the list stays where it is. */
  function renderBadge(room) {
    total();
    const button = $('room-list').querySelector(`li[data-room="${CSS.escape(room)}"] .room`);
    if (!button) return;
    button.querySelector('.unread')?.remove();
    const node = badge(room);
    if (node) button.append(node);
  }

  function render() {
    const { rooms, current } = page.saved();
    const items = rooms.map((room) =>
      element(
        'li',
        { class: room === current ? 'current' : '', dataset: { room } },
        element(
          'button',
          { type: 'button', class: 'room', 'aria-current': room === current ? 'page' : null, onclick: () => page.select(room) },
          element('span', { class: 'hash', 'aria-hidden': 'true' }, '#'),
          element('span', { class: 'room-name' }, room),
          badge(room),
        ),
        element('button', { type: 'button', class: 'leave', 'aria-label': `Leave ${room}`, title: `Leave ${room}`, onclick: () => page.leave(room) }, '×'),
      ),
    );
    $('room-list').replaceChildren(...items);
    total();
  }

  return { render, renderBadge };
}
