"use strict";
// The custom executor of scheduler.js, built on mesos-framework's Executor
// class: the agent starts it (node executor.js) with the environment a Mesos
// executor gets (MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID, MESOS_DIRECTORY,
// MESOS_AGENT_ENDPOINT, ...), from which the class finds the agent.
//
// A launched task whose ID contains "finish" is reported TASK_RUNNING then
// TASK_FINISHED; any other runs until the agent sends KILL, then is reported
// TASK_KILLED. SHUTDOWN, or the end of the event stream, ends the process.
// What it receives is logged on stdout (the sandbox's stdout file).

var crypto = require("crypto");
var mf = require("mesos-framework");

var Executor = mf.Executor;

function log(obj) {
    process.stdout.write("compat-executor " + JSON.stringify(obj) + "\n");
}

// Status updates go one at a time, each after the agent accepted the one
// before, so that they arrive in order.
var queue = [];
var inFlight = false;

function send() {
    if (inFlight || queue.length === 0) {
        return;
    }
    inFlight = true;
    executor.update(queue.shift());
}

function update(taskId, state) {
    queue.push({
        task_id: { value: taskId },
        executor_id: { value: process.env.MESOS_EXECUTOR_ID },
        state: state,
        source: "SOURCE_EXECUTOR",
        // Mesos requires a UUID (16 bytes, base64 in JSON) on every
        // executor update (src/common/validation.cpp).
        uuid: crypto.randomBytes(16).toString("base64"),
        timestamp: Date.now() / 1000
    });
    send();
}

// Every event gets a handler of its own: the package's default dispatch for
// executor events refers to an undefined variable (lib/executor.js,
// handleEvent uses schedulerHandlers), so events without a custom handler
// would be reported as errors and never emitted.
var executor = new Executor({
    handlers: {
        SUBSCRIBED: function (subscribed) {
            log({ event: "SUBSCRIBED", agent_port: subscribed.agent_info && subscribed.agent_info.port });
        },
        LAUNCH: function (launch) {
            var id = launch.task.task_id.value;
            log({ event: "LAUNCH", task_id: id });
            update(id, "TASK_RUNNING");
            if (id.indexOf("finish") >= 0) {
                update(id, "TASK_FINISHED");
            }
        },
        KILL: function (kill) {
            log({ event: "KILL", task_id: kill.task_id.value });
            update(kill.task_id.value, "TASK_KILLED");
        },
        ACKNOWLEDGED: function (ack) {
            log({ event: "ACKNOWLEDGED", task_id: ack.task_id.value });
        },
        MESSAGE: function (message) {
            log({ event: "MESSAGE" });
        },
        ERROR: function (error) {
            log({ event: "ERROR", message: error.message });
        },
        SHUTDOWN: function (shutdown) {
            log({ event: "SHUTDOWN" });
            setTimeout(function () { process.exit(0); }, 100);
        }
    }
});

executor.on("sent_update", function () {
    inFlight = false;
    send();
});

executor.on("error", function (error) {
    var message = (error && error.message) ? error.message : String(error);
    log({ event: "error", message: message });
    if (message.indexOf("connection was closed") >= 0) {
        process.exit(0);
    }
    if (inFlight && message.indexOf("Request was not accepted") >= 0) {
        inFlight = false;
        send();
    }
});

executor.subscribe();
