"use strict";
// A Mesos framework written with the npm package mesos-framework (a
// JavaScript client of the Mesos v1 scheduler and executor HTTP APIs that
// nobody at Apron wrote), run by internal/compat's TestNodeFramework against
// an Apron master and agent.
//
// It subscribes, launches COMPAT_TASKS command tasks through the package's
// own offer handler (which reads Offer.url and the offer's scalar resources),
// then two tasks on a custom executor (executor.js, run by node, built on the
// package's Executor class): one the executor finishes, one it runs until it
// is killed. It reconciles (explicitly and implicitly), kills the running
// task, tears the framework down, prints one JSON object per line on stdout
// and exits 0 when every step went as Mesos documents, 1 otherwise.
//
// Environment: COMPAT_MASTER (host:port of the master), COMPAT_TASKS (number
// of command tasks, default 2), COMPAT_LOG_DIR (where the package's logger
// writes its file), COMPAT_TIMEOUT_MS (overall bound, default 90000).

var path = require("path");
var crypto = require("crypto");
var mf = require("mesos-framework");
// The package's default event handlers: the OFFERS one is delegated to for
// the command tasks, so that its offer matching is what launches them.
var defaultHandlers = require("mesos-framework/lib/schedulerHandlers");

var Scheduler = mf.Scheduler;
var Mesos = mf.Mesos.getMesos();
var helpers = mf.helpers;

var master = (process.env.COMPAT_MASTER || "127.0.0.1:5050").split(":");
var commandTasks = parseInt(process.env.COMPAT_TASKS || "2", 10);
var logDir = process.env.COMPAT_LOG_DIR || require("os").tmpdir();
var timeoutMs = parseInt(process.env.COMPAT_TIMEOUT_MS || "90000", 10);

var executorId = "compat-node-executor";
var finishTaskId = "compat-exec-finish-" + crypto.randomBytes(4).toString("hex");
var killTaskId = "compat-exec-kill-" + crypto.randomBytes(4).toString("hex");

// phase: "commands" (the package's handler launches the command tasks),
// "executor" (this script launches the custom-executor tasks), "done".
var phase = "commands";
var states = {};        // task id -> last state
var finishedCommands = {};
var agentOfKillTask = null;
var reconciled = { explicit: false, implicit: false };
var failures = [];
var tornDown = false;

function out(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}

function fail(message) {
    failures.push(message);
    out({ event: "failure", message: message });
    finish();
}

function finish() {
    if (phase === "finished") {
        return;
    }
    phase = "finished";
    out({ result: failures.length === 0 ? "ok" : "failed", failures: failures, states: states });
    process.exit(failures.length === 0 ? 0 : 1);
}

setTimeout(function () {
    fail("timed out after " + timeoutMs + " ms in phase " + phase + "; states " + JSON.stringify(states));
}, timeoutMs).unref();

// The custom executor: executor.js next to this script, run by this node.
function executorInfo() {
    var cmd = JSON.stringify(process.execPath) + " " + JSON.stringify(path.join(__dirname, "executor.js"));
    return new Mesos.ExecutorInfo({
        executor_id: { value: executorId },
        name: "compat node executor",
        command: { value: cmd, shell: true },
        resources: [
            new Mesos.Resource("cpus", Mesos.Value.Type.SCALAR, new Mesos.Value.Scalar(0.1)),
            new Mesos.Resource("mem", Mesos.Value.Type.SCALAR, new Mesos.Value.Scalar(32))
        ]
    });
}

function executorTask(taskId, offer) {
    // A task for a custom executor has an ExecutorInfo and no CommandInfo:
    // Mesos refuses a task with both (src/master/validation.cpp,
    // validateExecutor), so the package's own OFFERS handler, which always
    // sets the command, cannot launch it; built here with the package's
    // protobuf classes instead.
    return new Mesos.TaskInfo({
        name: taskId,
        task_id: { value: taskId },
        agent_id: offer.agent_id,
        resources: [
            new Mesos.Resource("cpus", Mesos.Value.Type.SCALAR, new Mesos.Value.Scalar(0.1)),
            new Mesos.Resource("mem", Mesos.Value.Type.SCALAR, new Mesos.Value.Scalar(16))
        ],
        executor: executorInfo()
    });
}

function scalar(offer, name) {
    var total = 0;
    offer.resources.forEach(function (r) {
        if (r.name === name && r.type === "SCALAR") {
            total += r.scalar.value;
        }
    });
    return total;
}

function offersHandler(offers) {
    var self = this;
    if (phase === "commands") {
        return defaultHandlers.OFFERS.call(self, offers);
    }
    offers.offers.forEach(function (offer) {
        if (phase === "executor" && scalar(offer, "cpus") >= 0.3 && scalar(offer, "mem") >= 64) {
            phase = "executor-launched";
            out({ event: "launch_executor_tasks", offer_id: offer.id.value, url: offer.url });
            var launch = helpers.stringifyEnumsRecursive(new Mesos.Offer.Operation(
                Mesos.Offer.Operation.Type.LAUNCH,
                new Mesos.Offer.Operation.Launch([executorTask(finishTaskId, offer), executorTask(killTaskId, offer)])
            ));
            self.accept([offer.id], launch, null);
        } else {
            self.decline([offer.id], null);
        }
    });
}

var scheduler = new Scheduler({
    masterUrl: master[0],
    port: parseInt(master[1], 10),
    frameworkName: "compat-node-" + crypto.randomBytes(4).toString("hex"),
    frameworkFailoverTimeout: 60,
    restartStates: [], // a failed task is a failed test, not something to retry
    logging: { path: logDir, fileName: "mesos-framework.log", level: "info" },
    tasks: {
        cmd: {
            instances: commandTasks,
            commandInfo: new Mesos.CommandInfo(null, null, true, "echo hello from $MESOS_TASK_ID", null, null),
            resources: { cpus: 0.1, mem: 16, ports: 0, disk: 0 }
        }
    },
    handlers: { OFFERS: offersHandler }
});

scheduler.on("ready", function () {
    scheduler.subscribe();
});

scheduler.on("subscribed", function (obj) {
    out({ event: "subscribed", framework_id: obj.frameworkId, stream_id: obj.mesosStreamId });
});

scheduler.on("heartbeat", function () {
    out({ event: "heartbeat" });
});

scheduler.on("failure", function (failure) {
    // Mesos sends FAILURE when an executor exits or an agent is removed;
    // neither should happen before the teardown here.
    out({ event: "failure_event", failure: failure });
    if (!tornDown) {
        fail("FAILURE event before teardown: " + JSON.stringify(failure));
    }
});

scheduler.on("error", function (error) {
    var message = (error && error.message) ? error.message : JSON.stringify(error);
    out({ event: "error", message: message });
    if (!tornDown) {
        fail("error: " + message);
    }
});

scheduler.on("update", function (update) {
    var s = update.status;
    var id = s.task_id.value;
    out({
        event: "update", task_id: id, state: s.state, source: s.source, reason: s.reason || null,
        message: s.message || null, has_uuid: !!s.uuid,
        container_id: (s.container_status && s.container_status.container_id) ? s.container_status.container_id.value : null
    });
    states[id] = s.state;
    if (s.reason === "REASON_RECONCILIATION") {
        onReconciled(s);
        return;
    }
    switch (s.state) {
        case "TASK_FINISHED":
            if (id !== finishTaskId && id !== killTaskId) {
                finishedCommands[id] = true;
                if (Object.keys(finishedCommands).length === commandTasks && phase === "commands") {
                    // The command tasks' offer was declined with the default
                    // filter meanwhile; REVIVE clears it.
                    phase = "executor";
                    scheduler.revive();
                }
            }
            break;
        case "TASK_RUNNING":
            if (id === killTaskId) {
                agentOfKillTask = s.agent_id.value;
            }
            break;
        case "TASK_KILLED":
            if (id === killTaskId) {
                out({ event: "teardown" });
                tornDown = true;
                scheduler.teardown();
            } else {
                fail("task " + id + " killed");
            }
            return;
        case "TASK_STAGING":
        case "TASK_STARTING":
        case "TASK_KILLING":
            break;
        default:
            fail("task " + id + " ended in " + s.state + ": " + (s.message || ""));
            return;
    }
    maybeReconcile();
});

// Once the finishing executor task is done and the other runs: reconcile
// that one explicitly, then all implicitly; then kill it.
function maybeReconcile() {
    if (states[finishTaskId] === "TASK_FINISHED" && states[killTaskId] === "TASK_RUNNING" && !reconciled.asked) {
        reconciled.asked = true;
        out({ event: "reconcile_explicit", task_id: killTaskId });
        scheduler.reconcile(killTaskId, agentOfKillTask);
    }
}

function onReconciled(s) {
    var id = s.task_id.value;
    if (id !== killTaskId || s.state !== "TASK_RUNNING") {
        // Implicit reconciliation answers for every task the master knows
        // as non-terminal; only the executor's running task should be one.
        fail("reconciliation: task " + id + " in " + s.state);
        return;
    }
    if (!reconciled.explicit) {
        reconciled.explicit = true;
        out({ event: "reconcile_implicit" });
        scheduler.reconcile();
    } else if (!reconciled.implicit) {
        reconciled.implicit = true;
        out({ event: "kill", task_id: killTaskId });
        scheduler.kill(killTaskId, agentOfKillTask);
    }
}

scheduler.on("sent_teardown", function () {
    out({ event: "torn_down" });
    finish();
});
