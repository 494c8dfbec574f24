import ArgumentParser
import LavaJSON
import LavaPlan
import LavaSystem

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Resolve everything boot would do and print it; change nothing.")

    @OptionGroup var target: TargetOptions
    @OptionGroup var platform: PlatformOptions
    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("skip-script"), help: "Scriptlet glob lava-boot takes the slot of (repeatable).")
    var skipScripts: [String] = ["50-lava.sh"]

    @Flag(help: "Print the plan as JSON (schema: docs/plan-json.md).")
    var json = false

    func run() throws {
        let logger = try global.makeLogger(component: "plan")
        let resolver = Resolver(target: target, platform: platform, skipPatterns: skipScripts,
                                global: global, logger: logger)
        let (plan, _) = try resolver.plan()
        print(json ? PlanOutput.json(plan) : PlanOutput.text(plan), terminator: "")
    }
}

enum PlanOutput {
    static func json(_ plan: BootPlan) -> String {
        func worker(_ worker: WorkerPlan) -> JSONValue {
            .object([
                JSONMember("worker", .string(worker.config.worker)),
                JSONMember("package", .string(worker.package.name.fileName)),
                JSONMember("version", .string(worker.package.name.version.text)),
                JSONMember("reason", .string(worker.package.reason.rawValue)),
                JSONMember("installer", .string(worker.installer.rawValue)),
                JSONMember("daemons", .number(worker.config.daemons)),
                JSONMember("threads", worker.config.threads.map { .number($0) } ?? .null),
                JSONMember("env", .array(worker.config.environment.map { .string($0.name) })),
                JSONMember("stop_minutes", .number(worker.config.stopMinutes)),
                JSONMember("heartbeat_minutes", .number(worker.config.heartbeatMinutes)),
            ])
        }
        let document = JSONValue.object([
            JSONMember("source", .string(plan.source.description)),
            JSONMember("realm", .string(plan.realm)),
            JSONMember("worker", .string(plan.worker)),
            JSONMember("platform", .object([
                JSONMember("os", .string(plan.platform.os)),
                JSONMember("arch", .string(plan.platform.arch)),
                JSONMember("python", plan.platform.python.map { .string($0) } ?? .null),
            ])),
            JSONMember("current", .string(plan.current.package.name.fileName)),
            JSONMember("workers", .array(plan.workers.map(worker))),
            JSONMember("scriptlets", .array(plan.scriptlets.map { scriptlet in
                .object([JSONMember("name", .string(scriptlet.name)),
                         JSONMember("action", .string(scriptlet.skipped ? "skip" : "run"))])
            })),
        ])
        return document.serialized(pretty: true) + "\n"
    }

    static func text(_ plan: BootPlan) -> String {
        var out = ""
        out += "source:     \(plan.source)\n"
        out += "realm:      \(plan.realm)  worker: \(plan.worker)\n"
        out += "platform:   os \(plan.platform.os), python \(plan.platform.python ?? "none found"), arch \(plan.platform.arch) (alias \(plan.platform.archAlias))\n"
        out += "current:    \(plan.current.package.name.stem)\n"
        out += "workers:\n"
        for worker in plan.workers {
            let config = worker.config
            out += "  \(config.worker)\n"
            out += "    package:  \(worker.package.name.fileName) (\(worker.package.reason.rawValue), \(worker.installer.rawValue) installer)\n"
            out += "    daemons:  \(config.daemons), threads: \(config.threads.map(String.init) ?? "not set")\n"
            let names = config.environment.map(\.name)
            out += "    env:      \(names.isEmpty ? "none" : names.joined(separator: " ") + " (values hidden)")\n"
            out += "    stop:     \(config.stopMinutes) min budget, heartbeat every \(config.heartbeatMinutes) min\n"
        }
        out += "scriptlets:\n"
        if plan.scriptlets.isEmpty { out += "  (none in _boot_/)\n" }
        var installSlotShown = false
        for scriptlet in plan.scriptlets {
            if scriptlet.skipped {
                out += "  skip  \(scriptlet.name)\(installSlotShown ? "" : "  <- lava-boot installs and starts the workers here")\n"
                installSlotShown = true
            } else {
                out += "  run   \(scriptlet.name)\n"
            }
        }
        if !installSlotShown { out += "  (lava-boot installs and starts the workers after the last scriptlet)\n" }
        return out
    }
}
