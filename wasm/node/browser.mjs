// One headless Chromium (Debian's, driven by playwright-core) for the browser tests, commanded over
// stdin/stdout with one JSON object per line. Every request the page makes to a host other than
// 127.0.0.1/localhost is aborted and recorded ({op: "blocked"} lists them).
//   {op: "goto", url} {op: "reload"} {op: "eval", js} {op: "wait", js, timeout_ms} {op: "click", selector}
//   {op: "files", selector, path} {op: "screenshot", path} {op: "blocked"} {op: "close"}
// Replies: {ok: true, value} or {ok: false, error}. Chromium: CHROMIUM env var, else /usr/bin/chromium.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const profile = mkdtempSync(join(tmpdir(), "edgefleet-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  headless: true,
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  viewport: { width: 1100, height: 760 },
});
const blocked = [], consoleLines = [];
await context.route("**/*", (route) => {
  const host = new URL(route.request().url()).hostname;
  if (host === "127.0.0.1" || host === "localhost") return route.continue();
  blocked.push(route.request().url());
  return route.abort();
});
const page = context.pages()[0] || await context.newPage();
page.on("console", (m) => consoleLines.push(m.text().slice(0, 500)));
page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message.slice(0, 500)}`));

async function handle(cmd) {
  switch (cmd.op) {
    case "goto": await page.goto(cmd.url); return page.url();
    case "reload": await page.reload(); return page.url();
    case "eval": return await page.evaluate(`(async () => { ${cmd.js} })()`);
    case "wait":
      await page.waitForFunction(cmd.js, null, { timeout: cmd.timeout_ms || 60000, polling: 100 });
      return true;
    case "click": await page.click(cmd.selector); return true;
    case "files": await page.setInputFiles(cmd.selector, cmd.path); return true;
    case "screenshot": await page.screenshot({ path: cmd.path, fullPage: true }); return cmd.path;
    case "blocked": return blocked;
    case "console": return consoleLines.slice(-40);
    default: throw new Error(`unknown op ${cmd.op}`);
  }
}

// the parent (a test, the benchmark) went away: close the browser whatever is in progress
process.stdin.on("close", () => context.close().catch(() => {}).finally(() => {
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
}));

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const cmd = JSON.parse(line);
  if (cmd.op === "close") break;
  let reply;
  try {
    reply = { ok: true, value: (await handle(cmd)) ?? null };
  } catch (e) {
    reply = { ok: false, error: String(e.message || e).slice(0, 4000) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
await context.close();
rmSync(profile, { recursive: true, force: true });
process.exit(0);
