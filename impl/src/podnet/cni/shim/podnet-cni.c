/*
 * podnet-cni: the CNI plugin binary a runtime execs (installed as `podnet` in
 * the CNI bin dir). It does no networking itself: it answers VERSION, and
 * forwards every other call - the CNI_* environment and stdin untouched - to
 * the node's podnet agent (POST /v1/cni on its unix socket), which runs the
 * plugin logic (podnet.cni) and returns what to print and the exit status.
 * Written in C so an exec costs about a millisecond, not an interpreter start.
 *
 * From the network configuration it reads two top-level keys (a small JSON
 * tokenizer walks the document: a nested "agentSocket" is not the top-level
 * one, escapes are decoded):
 *   agentSocket   the agent's socket (default /var/run/podnet/podnet.sock);
 *                 present but not an absolute path of at most 107 bytes
 *                 without NUL: code 7.
 *   agentTimeout  seconds for the whole call - connecting (a full listen
 *                 queue is retried, not waited on), sending, every read -
 *                 default 30, more than 0 and at most 3600, else code 7.
 * VERSION it answers itself, with the cniVersion asked for on stdin when it
 * speaks it. Errors it meets itself are printed in the CNI error form: code
 * 11 (the agent is unreachable, or did not answer within agentTimeout; for
 * STATUS that is 50, not available), 4 (an environment value that is not
 * UTF-8), 6 (stdin that is not UTF-8, or not JSON), 7 (JSON but not an object).
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef DEFAULT_SOCKET /* a test builds its own (-DDEFAULT_SOCKET=...): nothing it runs reaches a real agent */
#define DEFAULT_SOCKET "/var/run/podnet/podnet.sock"
#endif
#define DEFAULT_TIMEOUT_S 30.0
#define MAX_TIMEOUT_S 3600.0
#define CURRENT_VERSION "1.1.0"
#define SUPPORTED_VERSIONS "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]"
#define EXIT_HEADER "Podnet-CNI-Exit:"
#define MAX_STDIN (4u << 20)  /* the agent takes 1 MiB; more is refused here */
#define MAX_REPLY (16u << 20) /* a result is a few hundred bytes */

static const char *const CNI_VARS[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME",
				       "CNI_ARGS",    "CNI_PATH",        NULL};

#include "podnet-cni-json.h"

/* Static, so that they are still reachable at exit (no leak to report) whatever path ends the run. */
static struct buf conf, body, request, reply, sock_path, version;

/* -- output -------------------------------------------------------------------------------- */

static const char *cni_version = CURRENT_VERSION;
static int status_call; /* CNI_COMMAND=STATUS: an unreachable agent means "not available" (50) */

static int fail(int code, const char *msg)
{
	struct buf out = {0};
	puts_(&out, "{\"cniVersion\":");
	put_json_string(&out, cni_version, strlen(cni_version));
	char num[32];
	snprintf(num, sizeof num, ",\"code\":%d,\"msg\":", code);
	puts_(&out, num);
	put_json_string(&out, msg, strlen(msg));
	puts_(&out, "}\n");
	fwrite(out.data, 1, out.len, stdout);
	free(out.data);
	return 1;
}

/* The agent cannot be reached or did not answer: try again later (11); for STATUS, not available (50). */
static int agent_fail(const char *msg) { return fail(status_call ? 50 : 11, msg); }

/* 1 if `v` is one of SUPPORTED_VERSIONS. */
static int supported(const char *v)
{
	char quoted[40];
	return strlen(v) < 32 && snprintf(quoted, sizeof quoted, "\"%s\"", v) > 0 && strstr(SUPPORTED_VERSIONS, quoted);
}

/* -- the exchange, all of it before the deadline -------------------------------------------- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1 when `fd` is ready, 0 at the deadline, -1 on error (errno). */
static int wait_fd(int fd, short events, double deadline)
{
	for (;;) {
		double left = deadline - now();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static void pause_until(double deadline, double seconds)
{
	double left = deadline - now();
	if (left <= 0)
		return;
	if (seconds > left)
		seconds = left;
	struct timespec ts = {.tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
}

int main(void)
{
	const char *command = getenv("CNI_COMMAND");
	int version_call = command && strcmp(command, "VERSION") == 0;
	status_call = command && strcmp(command, "STATUS") == 0;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
		if (conf.len + n > MAX_STDIN) {
			if (version_call)
				break; /* VERSION needs no configuration: answered with the current version */
			return fail(7, "the network configuration on stdin is larger than 4 MiB");
		}
		put(&conf, chunk, n);
	}
	puts_(&conf, "");

	char msg[640];
	struct settings s = {ABSENT, ABSENT, ABSENT, DEFAULT_TIMEOUT_S, &sock_path, &version};
	int parsed = read_settings(conf.data, conf.len, &s) == 0;
	if (parsed && s.version_kind == STRING && version.len < 32 && !memchr(version.data, 0, version.len) &&
	    valid_utf8((const unsigned char *)version.data, version.len))
		cni_version = version.data;
	if (version_call) {
		const char *answer = supported(cni_version) ? cni_version : CURRENT_VERSION;
		printf("{\"cniVersion\":\"%s\",\"supportedVersions\":%s}\n", answer, SUPPORTED_VERSIONS);
		return 0;
	}
	if (!valid_utf8((const unsigned char *)conf.data, conf.len))
		return fail(6, "the network configuration on stdin is not UTF-8");
	/* Undecodable, the configuration cannot say which agent it meant: answered here. */
	if (!parsed && !is_json(conf.data, conf.len))
		return fail(6, "the network configuration on stdin is not JSON (or nests deeper than 256 levels)");
	if (!parsed)
		return fail(7, "the network configuration must be a JSON object");
	for (const char *const *var = CNI_VARS; *var; var++) {
		const char *v = getenv(*var);
		if (v && !valid_utf8((const unsigned char *)v, strlen(v))) {
			snprintf(msg, sizeof msg, "%s is not valid UTF-8", *var);
			return fail(4, msg);
		}
	}
	const char *path = DEFAULT_SOCKET;
	if (parsed && s.socket_kind == OTHER)
		return fail(7, "agentSocket must be a string: the absolute path of the agent's socket");
	if (parsed && s.socket_kind == STRING) {
		size_t limit = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
		if (memchr(sock_path.data, 0, sock_path.len))
			return fail(7, "agentSocket contains a NUL character");
		if (sock_path.len == 0 || sock_path.data[0] != '/') {
			snprintf(msg, sizeof msg, "agentSocket \"%.200s\" must be an absolute path", sock_path.data);
			return fail(7, msg);
		}
		if (sock_path.len > limit) {
			snprintf(msg, sizeof msg, "agentSocket \"%.200s%s\" is %zu bytes: a unix socket path has at most %zu",
				 sock_path.data, sock_path.len > 200 ? "..." : "", sock_path.len, limit);
			return fail(7, msg);
		}
		path = sock_path.data;
	}
	double timeout = DEFAULT_TIMEOUT_S;
	if (parsed && s.timeout_kind != ABSENT) {
		if (s.timeout_kind != NUMBER || !(s.timeout > 0 && s.timeout <= MAX_TIMEOUT_S))
			return fail(7, "agentTimeout must be a number of seconds, more than 0 and at most 3600");
		timeout = s.timeout;
	}
	double deadline = now() + timeout;

	puts_(&body, "{\"env\":{");
	int first = 1;
	for (const char *const *var = CNI_VARS; *var; var++) {
		const char *v = getenv(*var);
		if (!v)
			continue;
		if (!first)
			puts_(&body, ",");
		first = 0;
		put_json_string(&body, *var, strlen(*var));
		puts_(&body, ":");
		put_json_string(&body, v, strlen(v));
	}
	puts_(&body, "},\"stdin\":");
	put_json_string(&body, conf.data, conf.len);
	puts_(&body, "}");

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(msg, sizeof msg, "podnet-cni: socket: %s", strerror(errno));
		return agent_fail(msg);
	}
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	memcpy(addr.sun_path, path, strlen(path)); /* bounded above by sun_path's size */
	double pause = 0.01;
	for (;;) {
		if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) { /* the agent's listen queue is full: try again until the deadline */
			if (now() >= deadline) {
				snprintf(msg, sizeof msg,
					 "podnet agent at unix://%s did not answer within %g s (connecting: its listen queue is full)",
					 path, timeout);
				return agent_fail(msg);
			}
			pause_until(deadline, pause);
			pause = pause < 0.2 ? pause * 2 : 0.25;
			continue;
		}
		snprintf(msg, sizeof msg, "podnet agent is unreachable at unix://%s (%s); is podnet-agent running?", path,
			 strerror(errno));
		return agent_fail(msg);
	}

	char head[256];
	snprintf(head, sizeof head,
		 "POST /v1/cni HTTP/1.1\r\nHost: podnet\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		 body.len);
	puts_(&request, head);
	put(&request, body.data, body.len);
	for (size_t sent = 0; sent < request.len;) {
		ssize_t w = send(fd, request.data + sent, request.len - sent, MSG_NOSIGNAL);
		if (w >= 0) {
			sent += (size_t)w;
			continue;
		}
		int ready = (errno == EAGAIN || errno == EINTR) ? wait_fd(fd, POLLOUT, deadline) : -1;
		if (ready == 0) {
			snprintf(msg, sizeof msg, "podnet agent at unix://%s did not answer within %g s (sending the request)",
				 path, timeout);
			return agent_fail(msg);
		}
		if (ready < 0) {
			snprintf(msg, sizeof msg, "podnet agent at unix://%s: sending the request: %s", path, strerror(errno));
			return agent_fail(msg);
		}
	}
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r > 0) {
			if (reply.len + (size_t)r > MAX_REPLY) {
				snprintf(msg, sizeof msg, "podnet agent at unix://%s sent more than 16 MiB", path);
				return agent_fail(msg);
			}
			put(&reply, chunk, (size_t)r);
			continue;
		}
		if (r == 0)
			break;
		int ready = (errno == EAGAIN || errno == EINTR) ? wait_fd(fd, POLLIN, deadline) : -1;
		if (ready == 0) {
			snprintf(msg, sizeof msg, "podnet agent at unix://%s did not answer within %g s", path, timeout);
			return agent_fail(msg);
		}
		if (ready < 0) {
			snprintf(msg, sizeof msg, "podnet agent at unix://%s: reading the reply: %s", path, strerror(errno));
			return agent_fail(msg);
		}
	}
	close(fd);
	if (reply.len == 0) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s did not answer: connection closed", path);
		return agent_fail(msg);
	}
	puts_(&reply, "");
	int status = 0;
	char *end = memmem(reply.data, reply.len, "\r\n\r\n", 4);
	if (!end || sscanf(reply.data, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s sent a malformed reply", path);
		return agent_fail(msg);
	}
	*end = '\0';
	const char *payload = end + 4;
	size_t payload_len = reply.len - (size_t)(payload - reply.data);
	char *exit_header = strcasestr(reply.data, EXIT_HEADER);
	if (status != 200 || !exit_header) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s answered HTTP %d to POST /v1/cni: %.300s", path, status,
			 payload);
		return fail(7, msg);
	}
	char *rest;
	long code = strtol(exit_header + strlen(EXIT_HEADER), &rest, 10);
	if (rest == exit_header + strlen(EXIT_HEADER) || code < 0 || code > 255) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s sent a malformed reply (exit status)", path);
		return agent_fail(msg);
	}
	fwrite(payload, 1, payload_len, stdout);
	return (int)code;
}
