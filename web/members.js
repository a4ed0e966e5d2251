// Who is in the room shown, from the library's presence: each person once,
// whatever their tabs and devices, kept live by the relay's arrivals and
// departures. A room too large to list shows how many people are in it.
// The list is not a live region: arrivals are not worth interrupting a
// screen reader for, and the heading's count is there to read on demand.

import { element } from './render.js';

const $ = (id) => document.getElementById(id);
const count = new Intl.NumberFormat();

/** `page` gives client(), me() and room() (the room shown, or null). */
export function membersPanel(page) {
  function render() {
    const client = page.client();
    const room = page.room();
    const panel = $('members');
    panel.hidden = !client || !room;
    if (panel.hidden) return;
    const handle = client.room(room);
    const users = handle.presence;
    const here = handle.occupancy;
    $('members-title').textContent = here === undefined ? 'People here' : `People here (${count.format(here)})`;
    const items = [...(users ?? [])].map((user) =>
      element(
        'li',
        { class: `member${user === page.me() ? ' me' : ''}`, dataset: { user } },
        element('span', { class: 'presence-dot', 'aria-hidden': 'true' }),
        element('span', { class: 'member-name' }, user),
        user === page.me() ? element('span', { class: 'you' }, '(you)') : null,
      ),
    );
    $('member-list').replaceChildren(...items);
    const summary = $('members-summary');
    if (users) summary.textContent = '';
    else if (here !== undefined) summary.textContent = here === 1 ? '1 person here' : `${count.format(here)} people here`;
    else summary.textContent = client.state === 'open' ? 'Looking who is here…' : 'Shown once connected.';
    summary.hidden = summary.textContent === '';
  }

  return { render };
}
