/* commands.h - subcommands of the svcinfra command that live in their own
 * files (tools/cmd_<module>.c). Each is a leaf of the table in svcinfra.c:
 * it receives the arguments after its name and does its own dispatch and
 * --help, with the exit codes of svcinfra.c (0 ok, 1 runtime failure,
 * 2 usage error, 3 backend unreachable). One line per module. */
#ifndef SVCINFRA_TOOLS_COMMANDS_H
#define SVCINFRA_TOOLS_COMMANDS_H

typedef struct command command;

int cmd_outbox(const command *self, int argc, char **argv);
int cmd_idempotency(const command *self, int argc, char **argv);
int cmd_jobs(const command *self, int argc, char **argv);

#endif
