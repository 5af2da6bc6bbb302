// The page's service worker: the app works offline after its first load. GET requests under this
// scope go to the network first (a new page, runtime or bundle wins) and fall back to the copy the
// page cached once it had started (app.mjs); Connect calls (POST, outside /app/) are never touched.
const CACHE = "edgefleet-app";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET" || !req.url.startsWith(self.registration.scope)) return;
  event.respondWith((async () => {
    try {
      const resp = await fetch(req);
      if (resp.ok && resp.status === 200) (await caches.open(CACHE)).put(req, resp.clone());
      return resp;
    } catch (err) {
      const hit = await caches.match(req, { ignoreSearch: true });
      if (hit) return hit;
      throw err;
    }
  })());
});
