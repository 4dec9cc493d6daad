// The demo app's service worker: shows a Web Push message (a notification the server sent
// while no tab of the user was connected: API.md "Mentions and notifications") and opens the
// app when it is clicked. The push body is the notification object of GET /api/notifications
// (or an inbox event carrying one); the browser decrypted it (RFC 8291).
const TEXT = {
  mention: 'mentioned you', reply: 'replied to you', dm: 'started a conversation with you', call: 'is calling',
  role: 'changed your role', ban: 'banned you', post: 'posted', report_resolved: 'resolved your report',
};

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  const n = data.notification || data;
  const who = n.actor ? (n.actor.display_name || n.actor.username) : 'Someone';
  const title = `Townhall: ${who} ${TEXT[n.type] || 'sent you a notification'}`;
  event.waitUntil(self.registration.showNotification(title, {
    body: n.type === 'mention' ? 'You were mentioned.' : '',
    tag: n.id ? `th-${n.id}` : undefined,
    data: { id: n.id },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil((async () => {
    const all = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    if (all.length) { await all[0].focus(); return; }
    await self.clients.openWindow('/');
  })());
});
