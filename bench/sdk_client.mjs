// bench/sdk_client.mjs -- the baseline of the client benchmark: the official
// OpenAI Node SDK (npm "openai") sending N chat completions with C requests
// in flight (Node's own concurrency: C async workers sharing one client),
// against the same stand-in server as hdistill's client.  Prints one JSON
// line: {"rps", "seconds", "cpu_ms_per_req", "ok", "failed"}.
// usage: node bench/sdk_client.mjs BASE_URL N C
// the SDK is installed under build/npm by bench/client.sh (not a project dependency)
const sdkURL = new URL("../build/npm/node_modules/openai/index.mjs", import.meta.url);
const { default: OpenAI } = await import(sdkURL.href);

const [baseURL, nArg, cArg] = process.argv.slice(2);
const N = parseInt(nArg, 10), C = parseInt(cArg, 10);
// keep-alive sockets for up to C connections, like the C client's pool
const http = await import("node:http");
const agent = new http.Agent({ keepAlive: true, maxSockets: C });
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 2, timeout: 60000, httpAgent: agent });

let next = 0, ok = 0, failed = 0;
async function worker() {
  while (true) {
    const i = next++;
    if (i >= N) return;
    try {
      const r = await client.chat.completions.create({
        model: "hdistill-standin",
        messages: [{ role: "user", content: "Rewrite the sentence below in 3 different humorous ways. Keep its meaning. Answer with a numbered list and nothing else.\nSentence: bench request number " + i }],
        temperature: 0.8,
        max_tokens: 64,
      });
      if (r.choices && r.choices[0].message.content) ok++; else failed++;
    } catch (e) {
      failed++;
    }
  }
}
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: C }, worker));
const sec = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({ rps: N / sec, seconds: sec, cpu_ms_per_req: (cpu.user + cpu.system) / 1000 / N, ok, failed }));
