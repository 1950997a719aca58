// Conformance harness: drives a (simulated) EmberZNet stick with zigbee-herdsman's Controller the way
// Zigbee2MQTT does, and reports each step of the scenario as one JSON line on stdout:
//   {"step": "start+form", "ok": true, "detail": "..."}
// On a failure the line carries "error" and "frames": the last EZSP frames herdsman logged (what it sent and
// what it got). The Go test cmd_simstick_herdsman_test.go runs this script against `otabridge simstick`.
//
// usage: node harness.mjs --port PATH --adapter ember|ezsp --dir DIR --channel N --pan-id N
//        --ext-pan-id HEX16 --network-key HEX32 --devices JSON [--scenario conformance|build|resume]
// --scenario build forms the network and lets every device join and be interviewed, then stops (no leave);
// --scenario resume starts again on the same stick and DIR (after another host used the stick) and checks
// that the network resumes with every device present and answering.
// --devices is a JSON array of {"ieee": "0x…", "model": "...", "manufacturer": "...", "fileVersion": N,
// "swBuildId": "...", "dateCode": "...", "type": "Router"|"EndDevice"}: the devices that must join, be interviewed and answer reads.

import {createRequire} from "node:module";
import {parseArgs} from "node:util";
import path from "node:path";

const require = createRequire(import.meta.url);
const {Controller, setLogger} = require("zigbee-herdsman");

const {values: opt} = parseArgs({
    options: {
        port: {type: "string"},
        adapter: {type: "string", default: "ember"},
        dir: {type: "string"},
        channel: {type: "string", default: "15"},
        "pan-id": {type: "string", default: "0x1a62"},
        "ext-pan-id": {type: "string", default: "dddddddddddddddd"},
        "network-key": {type: "string", default: "01030507090b0d0f00020406080a0c0d"},
        devices: {type: "string", default: "[]"},
        "join-timeout": {type: "string", default: "60"},
        verbose: {type: "boolean", default: false},
        scenario: {type: "string", default: "conformance"},
    },
});

const devices = JSON.parse(opt.devices);
const hexBytes = (h) => Array.from(Buffer.from(h.replace(/^0x/, ""), "hex"));

// The last log lines herdsman's EZSP/ASH layers wrote: on a failure they show the frames it sent and got.
const ring = [];
const leftDevices = new Set(); // devices whose leave the adapter reported (trust-center DEVICE_LEFT)
let wakeWaiters = () => {};
const remember = (level, msg, ns) => {
    const text = typeof msg === "function" ? msg() : msg;
    const left = /^Device leave '(0x[0-9a-f]{16})'/.exec(text);
    if (left) {
        leftDevices.add(left[1]);
        wakeWaiters();
    }
    ring.push(`${new Date().toISOString().slice(11, 23)} ${level} [${ns}] ${text}`);
    if (ring.length > 40) ring.shift();
    if (opt.verbose) process.stderr.write(`${level} [${ns}] ${text}\n`);
};
setLogger({
    debug: (m, ns) => remember("debug", m, ns),
    info: (m, ns) => remember("info", m, ns),
    warning: (m, ns) => remember("warning", m, ns),
    error: (m, ns) => remember("error", m, ns),
});

const report = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function step(name, fn) {
    const t0 = Date.now();
    try {
        const detail = await fn();
        report({step: name, ok: true, ms: Date.now() - t0, detail: detail ?? ""});
    } catch (err) {
        report({step: name, ok: false, ms: Date.now() - t0, error: String(err?.stack ?? err), frames: ring.slice(-25)});
        throw err;
    }
}

const withTimeout = (p, seconds, what) =>
    Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: no answer in ${seconds} s`)), seconds * 1000))]);

// newWaiter returns wake (call it when something changed) and until (resolves when cond holds, or fails
// after seconds).
function newWaiter() {
    let waiters = [];
    const wake = () => {
        for (const w of waiters) w();
    };
    const until = (cond, seconds, what) =>
        withTimeout(
            new Promise((resolve) => {
                const check = () => {
                    if (cond()) {
                        waiters = waiters.filter((w) => w !== check);
                        resolve();
                    }
                };
                waiters.push(check);
                check();
            }),
            seconds,
            what,
        );
    return {wake, until};
}

function newController(transmitPower) {
    const c = new Controller({
        network: {
            panID: Number(opt["pan-id"]),
            extendedPanID: hexBytes(opt["ext-pan-id"]),
            channelList: [Number(opt.channel)],
            networkKey: hexBytes(opt["network-key"]),
        },
        serialPort: {path: opt.port, adapter: opt.adapter, baudRate: 115200, rtscts: false},
        databasePath: path.join(opt.dir, "database.db"),
        databaseBackupPath: path.join(opt.dir, "database.db.backup"),
        backupPath: path.join(opt.dir, "coordinator_backup.json"),
        // The second start asks for another transmit power than the network was formed with: the adapters
        // then set it with setRadioPower.
        adapter: {disableLED: true, concurrent: 4, transmitPower},
        acceptJoiningDeviceHandler: async () => true,
    });
    c.on("adapterDisconnected", () => remember("error", "adapter disconnected", "harness"));
    return c;
}

async function main() {
    let controller = newController(8);
    await step("start+form", async () => {
        const r = await withTimeout(controller.start(), 60, "start");
        if (r !== "reset") throw new Error(`start returned ${r}, want reset (a fresh stick forms the network)`);
        const p = await controller.getNetworkParameters();
        if (p.channel !== Number(opt.channel) || p.panID !== Number(opt["pan-id"])) {
            throw new Error(`network formed on channel ${p.channel} PAN 0x${p.panID.toString(16)}, want ${opt.channel} ${opt["pan-id"]}`);
        }
        const ver = await controller.getCoordinatorVersion();
        return `${r}; channel ${p.channel}, PAN 0x${p.panID.toString(16)}; coordinator ${JSON.stringify(ver)}`;
    });
    await step("stop", async () => withTimeout(controller.stop(), 30, "stop"));

    controller = newController(10);
    const joined = new Map();
    const interviewed = new Map();
    const {wake, until} = newWaiter();
    wakeWaiters = wake;
    controller.on("deviceJoined", (e) => {
        joined.set(e.device.ieeeAddr, e.device);
        wake();
    });
    controller.on("deviceInterview", (e) => {
        interviewed.set(e.device.ieeeAddr, e.status);
        wake();
    });

    await step("start again+resume", async () => {
        const r = await withTimeout(controller.start(), 60, "start");
        if (r !== "resumed") throw new Error(`start returned ${r}, want resumed (the stick kept its network)`);
        return r;
    });
    await step("permit join", async () => {
        await withTimeout(controller.permitJoin(254), 30, "permitJoin");
        if (!controller.getPermitJoin()) throw new Error("permit join not reported open");
    });
    for (const d of devices) {
        await step(`join ${d.ieee}`, async () => {
            await until(() => joined.has(d.ieee), Number(opt["join-timeout"]), `join of ${d.ieee}`);
            return `nwk 0x${joined.get(d.ieee).networkAddress.toString(16)}`;
        });
    }
    for (const d of devices) {
        await step(`interview ${d.ieee}`, async () => {
            await until(() => ["successful", "failed"].includes(interviewed.get(d.ieee)), 90, `interview of ${d.ieee}`);
            if (interviewed.get(d.ieee) !== "successful") throw new Error(`interview ${interviewed.get(d.ieee)}`);
            const dev = controller.getDeviceByIeeeAddr(d.ieee);
            if (d.type && dev.type !== d.type) throw new Error(`interviewed as ${dev.type}, want ${d.type}`);
            return `${dev.type} ${dev.manufacturerName}/${dev.modelID} endpoints ${dev.endpoints.map((e) => e.ID).join(",")}`;
        });
    }
    for (const d of devices) {
        const dev = controller.getDeviceByIeeeAddr(d.ieee);
        const ep = dev.endpoints.find((e) => e.supportsInputCluster("genBasic")) ?? dev.endpoints[0];
        await step(`read Basic ${d.ieee}`, async () => {
            const attrs = ["modelId", "manufacturerName", "swBuildId"];
            if (d.dateCode) attrs.push("dateCode");
            const got = await withTimeout(ep.read("genBasic", attrs), 30, "read genBasic");
            if (got.modelId !== d.model || got.manufacturerName !== d.manufacturer) {
                throw new Error(`Basic read ${JSON.stringify(got)}, want model ${d.model} manufacturer ${d.manufacturer}`);
            }
            if (d.swBuildId && got.swBuildId !== d.swBuildId) throw new Error(`swBuildId ${got.swBuildId}, want ${d.swBuildId}`);
            if (d.dateCode && got.dateCode !== d.dateCode) throw new Error(`dateCode ${got.dateCode}, want ${d.dateCode}`);
            return JSON.stringify(got);
        });
        await step(`read OTA ${d.ieee}`, async () => {
            const got = await withTimeout(ep.read("genOta", ["currentFileVersion", "imageTypeId", "manufacturerId"]), 30, "read genOta");
            if (got.currentFileVersion !== d.fileVersion) throw new Error(`currentFileVersion ${got.currentFileVersion}, want ${d.fileVersion}`);
            return JSON.stringify(got);
        });
    }
    await step("group command (multicast)", async () => {
        // A ZCL command to a group goes out as an EZSP multicast (sendMulticast); the stick confirms it.
        await withTimeout(controller.createGroup(0x0007).command("genOnOff", "off", {}), 30, "group command");
    });
    const leaving = devices[devices.length - 1];
    await step(`leave ${leaving.ieee}`, async () => {
        // ZDO Mgmt_Leave_req without rejoin: the device answers, leaves, and the trust center reports it.
        // herdsman deletes the device on the Mgmt_Leave_rsp, so the trust center's DEVICE_LEFT that follows only
        // shows in its log ("Device leave '<ieee>'"), not as a deviceLeave event.
        await withTimeout(controller.getDeviceByIeeeAddr(leaving.ieee).removeFromNetwork(), 30, "removeFromNetwork");
        if (controller.getDeviceByIeeeAddr(leaving.ieee)) throw new Error("device still known after removeFromNetwork");
        await until(() => leftDevices.has(leaving.ieee), 30, `trust-center leave report of ${leaving.ieee}`);
    });
    await step("permit join closed", async () => {
        await withTimeout(controller.permitJoin(0), 30, "permitJoin(0)");
        if (controller.getPermitJoin()) throw new Error("permit join still reported open");
    });
    await step("stop", async () => withTimeout(controller.stop(), 30, "stop"));
    report({done: true});
}

// build: form, every device joins and is interviewed, permit join closed, stop.
async function build() {
    const controller = newController(8);
    const joined = new Set();
    const interviewed = new Map();
    const {wake, until} = newWaiter();
    controller.on("deviceJoined", (e) => {
        joined.add(e.device.ieeeAddr);
        wake();
    });
    controller.on("deviceInterview", (e) => {
        interviewed.set(e.device.ieeeAddr, e.status);
        wake();
    });
    await step("start+form", async () => {
        const r = await withTimeout(controller.start(), 60, "start");
        if (r !== "reset") throw new Error(`start returned ${r}, want reset (a fresh stick forms the network)`);
        return r;
    });
    await step("permit join", async () => withTimeout(controller.permitJoin(254), 30, "permitJoin"));
    for (const d of devices) {
        await step(`interview ${d.ieee}`, async () => {
            await until(() => ["successful", "failed"].includes(interviewed.get(d.ieee)), 120, `interview of ${d.ieee}`);
            if (interviewed.get(d.ieee) !== "successful") throw new Error(`interview ${interviewed.get(d.ieee)}`);
            const dev = controller.getDeviceByIeeeAddr(d.ieee);
            return `${dev.type} ${dev.manufacturerName}/${dev.modelID} nwk 0x${dev.networkAddress.toString(16)}`;
        });
    }
    await step("permit join closed", async () => withTimeout(controller.permitJoin(0), 30, "permitJoin(0)"));
    await step("stop", async () => withTimeout(controller.stop(), 30, "stop"));
    report({done: true});
}

// resume: the stick comes back from another host; the network must resume (not be formed again) with every
// device of the database present and answering a read.
async function resume() {
    const controller = newController(8);
    await step("start+resume", async () => {
        const r = await withTimeout(controller.start(), 60, "start");
        if (r !== "resumed") throw new Error(`start returned ${r}, want resumed (the stick kept the network)`);
        const p = await controller.getNetworkParameters();
        if (p.channel !== Number(opt.channel) || p.panID !== Number(opt["pan-id"])) {
            throw new Error(`network on channel ${p.channel} PAN 0x${p.panID.toString(16)}, want ${opt.channel} ${opt["pan-id"]}`);
        }
        return `${r}; channel ${p.channel}, PAN 0x${p.panID.toString(16)}`;
    });
    for (const d of devices) {
        await step(`present ${d.ieee}`, async () => {
            const dev = controller.getDeviceByIeeeAddr(d.ieee);
            if (!dev) throw new Error("not in the database after the resume");
            const ep = dev.endpoints.find((e) => e.supportsInputCluster("genBasic")) ?? dev.endpoints[0];
            const basic = await withTimeout(ep.read("genBasic", ["modelId"]), 30, "read genBasic");
            if (basic.modelId !== d.model) throw new Error(`modelId ${basic.modelId}, want ${d.model}`);
            const ota = await withTimeout(ep.read("genOta", ["currentFileVersion"]), 30, "read genOta");
            return JSON.stringify({modelId: basic.modelId, currentFileVersion: ota.currentFileVersion});
        });
    }
    await step("stop", async () => withTimeout(controller.stop(), 30, "stop"));
    report({done: true});
}

const scenarios = {conformance: main, build, resume};
if (!scenarios[opt.scenario]) {
    process.stderr.write(`unknown --scenario ${opt.scenario}\n`);
    process.exit(2);
}
scenarios[opt.scenario]().then(
    () => process.exit(0),
    () => process.exit(1),
);
