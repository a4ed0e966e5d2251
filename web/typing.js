// "alice is typing…" under the messages of the room shown. The line on
// screen follows the library's typing set at once. Screen readers get a
// calmer copy in a polite live region: a change is announced only once it
// has held for a moment, at most once every few seconds, and never when
// the line empties, so people starting and stopping around each message
// do not make a storm of announcements on top of the messages themselves.

const $ = (id) => document.getElementById(id);
/** A change must hold this long (ms) to be announced. */
const SETTLE = 1500;
/** At least this long (ms) between two announcements. */
const QUIET = 10_000;

/** The line for a set of typists (sorted, never yourself). */
export function typingText(users) {
  if (users.length === 0) return '';
  if (users.length === 1) return `${users[0]} is typing…`;
  if (users.length === 2) return `${users[0]} and ${users[1]} are typing…`;
  return 'Several people are typing…';
}

/** `page` gives client() and room() (the room shown, or null). */
export function typingLine(page) {
  let announced = '';
  let announcedAt = -Infinity;
  let timer = null;

  /** Shows the room's typists; `quietly` (a room switch) announces nothing. */
  function render({ quietly = false } = {}) {
    const client = page.client();
    const room = page.room();
    const text = client && room ? typingText(client.room(room).typists) : '';
    $('typing').textContent = text;
    clearTimeout(timer);
    if (!text || quietly) {
      // Emptied silently: the next typist can be announced again.
      $('typing-announce').textContent = '';
      announced = quietly ? text : '';
      return;
    }
    if (text === announced) return;
    const wait = Math.max(SETTLE, announcedAt + QUIET - Date.now());
    timer = setTimeout(() => {
      if ($('typing').textContent !== text) return;
      $('typing-announce').textContent = text;
      announced = text;
      announcedAt = Date.now();
    }, wait);
  }

  return { render };
}
