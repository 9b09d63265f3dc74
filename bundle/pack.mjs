#!/usr/bin/env node
// Packs the MCP Bundle (.mcpb) of this server for one platform: builds the
// release binary (unless --binary names one), lays out the bundle with the
// manifest of this folder narrowed to that platform, checks it and packs it
// with the official mcpb CLI.
//
//   node bundle/pack.mjs                      # this machine, fresh release build
//   node bundle/pack.mjs --binary PATH --platform darwin --arch aarch64 --out DIR
//
// The mcpb CLI is the one named by $MCPB, or else the pinned version below,
// run through npx.

import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const MCPB_VERSION = "2.1.2";
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");

function fail(message) {
  console.error(`pack: ${message}`);
  process.exit(1);
}

function options(argv) {
  const known = new Set(["--binary", "--platform", "--arch", "--out"]);
  const found = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!known.has(argv[i]) || argv[i + 1] === undefined) {
      fail(`unknown or incomplete option ${argv[i]}; use --binary PATH, --platform linux|darwin|win32, --arch x86_64|aarch64, --out DIR`);
    }
    found[argv[i].slice(2)] = argv[i + 1];
  }
  return found;
}

// On Windows, npx and cargo are started through the shell, which splits
// unquoted arguments at spaces (a checkout under "C:\Users\Jane Doe").
function quoted(arg) {
  return process.platform === "win32" && /[\s"]/.test(arg) ? `"${arg.replace(/"/g, '\\"')}"` : arg;
}

function run(command, args, what) {
  const result = spawnSync(command, args.map(quoted), { stdio: "inherit", shell: process.platform === "win32" });
  if (result.error) fail(`${what} could not start: ${result.error.message}`);
  if (result.status !== 0) fail(`${what} failed (exit ${result.status})`);
}

function mcpb(args) {
  if (process.env.MCPB) {
    run(process.env.MCPB, args, "mcpb");
  } else {
    run("npx", ["--yes", `@anthropic-ai/mcpb@${MCPB_VERSION}`, ...args], "mcpb (through npx)");
  }
}

const opts = options(process.argv.slice(2));
const platform = opts.platform ?? process.platform;
if (!["linux", "darwin", "win32"].includes(platform)) fail(`--platform must be linux, darwin or win32, not ${platform}`);
const arch = opts.arch ?? ({ x64: "x86_64", arm64: "aarch64" }[process.arch] ?? process.arch);
if (!["x86_64", "aarch64"].includes(arch)) fail(`--arch must be x86_64 or aarch64, not ${arch}`);
const exe = platform === "win32" ? "bloomreach-vouchers-mcp.exe" : "bloomreach-vouchers-mcp";

let binary = opts.binary;
if (binary === undefined) {
  run("cargo", ["build", "--release", "--locked", "--manifest-path", join(root, "Cargo.toml")], "cargo build --release");
  binary = join(root, "target", "release", process.platform === "win32" ? "bloomreach-vouchers-mcp.exe" : "bloomreach-vouchers-mcp");
}
if (!existsSync(binary)) fail(`no binary at ${binary}`);

const manifest = JSON.parse(readFileSync(join(here, "manifest.json"), "utf8"));
const cargo = readFileSync(join(root, "Cargo.toml"), "utf8").match(/^version\s*=\s*"([^"]+)"/m);
if (!cargo || cargo[1] !== manifest.version) {
  fail(`bundle/manifest.json has version ${manifest.version}, Cargo.toml ${cargo && cargo[1]}: make them the same`);
}
// This bundle carries one platform's binary: it says so.
manifest.compatibility = { ...manifest.compatibility, platforms: [platform] };
manifest.server.entry_point = `server/${exe}`;

const target = `${platform}-${arch}`;
const out = resolve(opts.out ?? join(root, "target", "bundle"));
const stage = join(out, `stage-${target}`);
rmSync(stage, { recursive: true, force: true });
mkdirSync(join(stage, "server"), { recursive: true });
writeFileSync(join(stage, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
copyFileSync(binary, join(stage, "server", exe));
if (platform !== "win32") chmodSync(join(stage, "server", exe), 0o755);
for (const file of ["LICENSE", "README.md"]) copyFileSync(join(root, file), join(stage, file));

const bundle = join(out, `bloomreach-vouchers-mcp-${manifest.version}-${target}.mcpb`);
mcpb(["validate", join(stage, "manifest.json")]);
mcpb(["pack", stage, bundle]);
rmSync(stage, { recursive: true, force: true });
console.log(bundle);
