// On a phone there is no room for four panels side by side, and stacking
// them left the room list 0 px tall. So on a narrow screen (style.css,
// "phones") one section is shown at a time, the chat by default, and a bar
// of buttons switches between them: Chat, Rooms, People, Notifications.
// Wider screens show every section and no bar; the chosen section is kept
// in #chat's data-view either way, and only the phone layout reads it.

const $ = (id) => document.getElementById(id);

export function sectionViews() {
  const chat = $('chat');
  const bar = $('views');
  const buttons = [...bar.querySelectorAll('button[data-view]')];
  /** Notifications that came while another section was shown on a phone. */
  let unseen = 0;

  /** Whether sections are shown one at a time: the bar is on screen only then. */
  function oneAtATime() {
    return !chat.hidden && getComputedStyle(bar).display !== 'none';
  }

  function show(view) {
    chat.dataset.view = view;
    for (const button of buttons) button.setAttribute('aria-pressed', String(button.dataset.view === view));
    if (view === 'notifications') {
      unseen = 0;
      setBadge('notifications-badge', 0, 'new');
    }
  }

  /**
   * Back to the conversation after choosing or joining a room on a phone.
   * The control used is hidden with its section, so focus goes to the
   * room's heading, where a screen reader says where it landed.
   */
  function showConversation() {
    if (!oneAtATime() || chat.dataset.view === 'conversation') return;
    show('conversation');
    $('room-title').focus();
  }

  /** The count on a bar button: seen as a number, heard as "3 unread". */
  function setBadge(id, count, what) {
    const badge = $(id);
    badge.hidden = count === 0;
    const number = document.createElement('span');
    number.setAttribute('aria-hidden', 'true');
    number.textContent = String(count);
    const spoken = document.createElement('span');
    spoken.className = 'visually-hidden';
    spoken.textContent = ` ${count} ${what}`;
    badge.replaceChildren(...(count ? [number, spoken] : []));
  }

  for (const button of buttons) button.addEventListener('click', () => show(button.dataset.view));

  return {
    show,
    showConversation,
    /** Unread messages in the rooms not shown. */
    roomsUnread: (count) => setBadge('rooms-badge', count, 'unread'),
    notificationArrived() {
      if (!oneAtATime() || chat.dataset.view === 'notifications') return;
      unseen += 1;
      setBadge('notifications-badge', unseen, 'new');
    },
  };
}
