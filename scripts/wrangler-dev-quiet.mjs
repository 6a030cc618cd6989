// Runs a Worker the way `wrangler dev --local` does (wrangler's own dev server: the same
// Miniflare and workerd, bindings, Durable Objects and persistence), but with the DevTools
// inspector off. Used by scripts/bench.sh only.
//
// Why: the `wrangler dev` command always attaches its inspector proxy to the runtime and
// enables the DevTools Network domain, so the runtime reports every subrequest a Worker makes
// to it. That costs each fetch() about 4 ms on this kind of machine, which no deployed Worker
// pays, and which a Worker that makes no subrequest (the trivial floor) never pays: measured
// that way, a JavaScript Worker that only forwards to the origin looks 4 ms slower than the
// floor. The command line has no switch for it; wrangler's API has `dev.inspector: false`.
//
//   node scripts/wrangler-dev-quiet.mjs --config FILE --port N [--persist-to DIR]
//        [--log-level LEVEL] [--var NAME:VALUE ...]
//
// Prints "ready <url>" once the Worker answers, and stops it on SIGINT or SIGTERM.
import path from "node:path";
import process from "node:process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

function parse(argv) {
    const options = { vars: {}, logLevel: "warn" };
    for (let i = 0; i < argv.length; i += 2) {
        const [flag, value] = [argv[i], argv[i + 1]];
        if (value === undefined) throw new Error(`${flag} needs a value`);
        switch (flag) {
            case "--config": options.config = value; break;
            case "--port": options.port = Number(value); break;
            case "--persist-to": options.persist = value; break;
            case "--log-level": options.logLevel = value; break;
            case "--var": {
                const colon = value.indexOf(":");
                if (colon < 1) throw new Error(`--var wants NAME:VALUE, not ${value}`);
                options.vars[value.slice(0, colon)] = value.slice(colon + 1);
                break;
            }
            default: throw new Error(`unknown flag ${flag}`);
        }
    }
    if (!options.config || !Number.isInteger(options.port)) {
        throw new Error("--config and --port are required");
    }
    return options;
}

const options = parse(process.argv.slice(2));
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const wrangler = pathToFileURL(path.join(root, "node_modules/wrangler/wrangler-dist/cli.js"));
const { unstable_startWorker: startWorker } = await import(wrangler.href);

const bindings = Object.fromEntries(
    Object.entries(options.vars).map(([name, value]) => [name, { type: "plain_text", value }]),
);
const worker = await startWorker({
    config: options.config,
    bindings,
    dev: {
        inspector: false,
        watch: false,
        server: { hostname: "127.0.0.1", port: options.port },
        persist: options.persist,
        logLevel: options.logLevel,
    },
});
await worker.ready;
// The Worker is bundled and nothing watches for changes, so esbuild's service process (which
// wrangler starts through the same `esbuild` package) has nothing left to do; idle, it still
// takes about 1% of a core, which the bench would count against whatever it measures.
const esbuild = createRequire(wrangler)("esbuild");
await esbuild.stop();
console.log(`ready ${await worker.url}`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, async () => {
        if (stopping) return;
        stopping = true;
        await worker.dispose();
        process.exit(0);
    });
}
