/* TCP request/response rate, netperf TCP_RR style: one connection, 1-byte
 * request, 1-byte response, as many round trips as fit in the duration.
 *   tcp_rr server PORT
 *   tcp_rr client IP PORT SECONDS      prints: transactions/s
 * (netperf is in Debian's non-free section; this is the one measurement we need.) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int serve(int port)
{
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};

	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&addr, sizeof(addr)) || listen(ls, 8)) {
		perror("tcp_rr server");
		return 1;
	}
	for (;;) {
		int c = accept(ls, NULL, NULL);
		char b;

		if (c < 0)
			continue;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while (read(c, &b, 1) == 1 && write(c, &b, 1) == 1)
			;
		close(c);
	}
}

static int client(const char *ip, int port, double seconds)
{
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
	long n = 0;
	char b = 'x';
	double start, end;

	inet_pton(AF_INET, ip, &addr.sin_addr);
	if (connect(s, (struct sockaddr *)&addr, sizeof(addr))) {
		perror("tcp_rr client");
		return 1;
	}
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	start = now();
	end = start + seconds;
	while (now() < end) {
		for (int i = 0; i < 100; i++) {
			if (write(s, &b, 1) != 1 || read(s, &b, 1) != 1) {
				perror("tcp_rr round trip");
				return 1;
			}
		}
		n += 100;
	}
	printf("%.0f\n", n / (now() - start));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "server"))
		return serve(atoi(argv[2]));
	if (argc == 5 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: tcp_rr server PORT | tcp_rr client IP PORT SECONDS\n");
	return 2;
}
