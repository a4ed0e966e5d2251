// The notifications panel: notifications as they arrive, older ones a page
// at a time from the relay, and, when the relay could not recover what
// arrived while the page was away (a restart, a long absence, a lost
// history), the newest page fetched again from the collection itself.
// "Load older notifications" is offered only once the relay said some
// exist: on sign-in the page asks for one, so a person with none is not
// offered a button that finds nothing.

import { element, failureToast, notificationItem } from './render.js';

const $ = (id) => document.getElementById(id);
const PAGE = 20;

/** Both lists merged, each notification once, newest first by id as the relay pages them. */
export function mergeNotifications(held, items) {
  const byId = new Map(held.map((notification) => [notification.id, notification]));
  for (const item of items) if (!byId.has(item.id)) byId.set(item.id, item);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/** `page` gives client(), saved() (the state kept across reloads) and save(). */
export function notificationsPanel(page) {
  /** Whether notifications older than the oldest shown exist: undefined until the relay said. */
  let older;

  function render() {
    const items = page.saved().notifications.map(notificationItem);
    $('notification-list').replaceChildren(...items);
    $('notifications-empty').hidden = items.length > 0;
    $('notification-count').textContent = items.length ? `(${items.length})` : '';
    $('older-notifications').hidden = older !== true;
    $('notifications-end').hidden = older !== false || items.length === 0;
    // Says whether the relay was asked yet, which the button alone cannot (tests wait on it).
    $('notifications').dataset.older = older === undefined ? 'unknown' : older ? 'yes' : 'no';
  }

  function add(items) {
    const saved = page.saved();
    saved.notifications = mergeNotifications(saved.notifications, items);
    page.save();
    // Older ones added at once: announce the change once, not each of them.
    $('notification-list').setAttribute('aria-busy', 'true');
    render();
    $('notification-list').removeAttribute('aria-busy');
  }

  function notice(text) {
    const box = $('notification-notice');
    box.replaceChildren(
      element('span', {}, text),
      element('button', { type: 'button', class: 'link', onclick: () => (box.hidden = true) }, 'Dismiss'),
    );
    box.hidden = false;
  }

  /** Appends the page before the oldest notification shown (the newest page when none is). */
  async function loadOlder() {
    const button = $('older-notifications');
    button.disabled = true;
    try {
      const { items, more } = await page.client().notificationsPage({ before: page.saved().notifications.at(-1)?.id, limit: PAGE });
      older = more;
      add(items);
    } catch (error) {
      failureToast($('toasts'), 'Cannot load older notifications')(error);
    } finally {
      button.disabled = false;
    }
  }

  /** Asks the relay whether any notification is older than the oldest shown (one item is enough to know). */
  async function checkOlder() {
    try {
      const { items } = await page.client().notificationsPage({ before: page.saved().notifications.at(-1)?.id, limit: 1 });
      older = items.length > 0;
    } catch (error) {
      if (error.code === 'closed') return;
      // Not known: offer the button, which says what it finds.
      older = true;
    }
    render();
  }

  /** After notifications could not be recovered live: the newest page, which holds what was missed. */
  async function refetch(why) {
    try {
      add((await page.client().notificationsPage({ limit: PAGE })).items);
      notice(`${why}. The latest were fetched again.`);
    } catch (error) {
      if (error.code !== 'closed') notice(`${why}. Some notifications may be missing.`);
    }
  }

  function reset() {
    older = undefined;
    $('notification-list').replaceChildren();
    $('notification-notice').hidden = true;
  }

  $('older-notifications').addEventListener('click', loadOlder);

  return { render, checkOlder, received: (notification) => add([notification]), refetch, reset };
}
