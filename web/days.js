// Day separators in the message list ("Today", "Yesterday", "Monday 3
// March"): a message shows only its time, so without them yesterday's
// 4 PM sits above today's 1 PM and time seems to run backwards. Each
// message item carries its local day (data-day); the separators are
// reconciled in place after every change rather than rebuilt, so the
// list's live region does not announce them again and again.

/** The local calendar day of a date, as YYYY-MM-DD (the value of a <time datetime>). */
export function dayKey(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

const sameYear = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const otherYear = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

/** What a day is called from `now`'s point of view. */
export function dayLabel(key, now = new Date()) {
  const [year, month, day] = key.split('-').map(Number);
  const date = new Date(year, month - 1, day);
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  // Rounded: a day with a daylight saving change is 23 or 25 hours long.
  const ago = Math.round((today - date) / 86_400_000);
  if (ago === 0) return 'Today';
  if (ago === 1) return 'Yesterday';
  return (year === now.getFullYear() ? sameYear : otherYear).format(date);
}

function separator(key, now) {
  const item = document.createElement('li');
  item.className = 'day';
  item.dataset.day = key;
  const time = document.createElement('time');
  time.dateTime = key;
  time.textContent = dayLabel(key, now);
  item.append(time);
  return item;
}

/**
 * Puts one separator before the first message of each day in `list` (items
 * with a data-day; one without, a message whose time is unknown, stays in
 * the day above it), keeps those already in place, relabels them (a page
 * left open past midnight), and removes the rest.
 */
export function syncDays(list, now = new Date()) {
  const kept = new Set();
  let current = null;
  for (const item of list.querySelectorAll(':scope > li.message')) {
    const key = item.dataset.day;
    if (!key || key === current) continue;
    current = key;
    let mark = item.previousElementSibling;
    if (!mark?.classList.contains('day') || mark.dataset.day !== key) {
      mark = separator(key, now);
      item.before(mark);
    } else {
      const label = dayLabel(key, now);
      const time = mark.querySelector('time');
      if (time.textContent !== label) time.textContent = label;
    }
    kept.add(mark);
  }
  for (const mark of list.querySelectorAll(':scope > li.day')) {
    if (!kept.has(mark)) mark.remove();
  }
}

/** Calls `relabel` just after each local midnight, when "Today" becomes "Yesterday". */
export function atEachMidnight(relabel) {
  const now = new Date();
  const next = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1, 0, 0, 1);
  setTimeout(() => {
    relabel();
    atEachMidnight(relabel);
  }, next - now);
}
