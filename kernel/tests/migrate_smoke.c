// SPDX-License-Identifier: GPL-2.0
/*
 * migrate_smoke: move private anonymous memory from one NUMA node to another
 * with move_pages(2), one address per folio, and check that every page
 * landed on the target node and that every byte survived.
 *
 * usage: migrate_smoke [-s MiB] [-t|-T] [-f NODE] [-n NODE] [-l LOOPS] [-S SEED]
 *                      [-F FILE] [-M]
 *   -s MiB    size of the mapping (default 32)
 *   -t        madvise(MADV_HUGEPAGE) (THP / mTHP, as the sysfs settings allow)
 *   -T        madvise(MADV_NOHUGEPAGE) (4K folios only)
 *   -f NODE   node to bind and fill on (default 0)
 *   -n NODE   node to move to (default 1)
 *   -l LOOPS  move back and forth LOOPS times, checking after each move
 *   -S SEED   pattern seed
 *   -F FILE   map FILE (created, on tmpfs: shmem page cache) MAP_SHARED
 *             instead of private anonymous memory
 *   -M        migrate with mbind(MPOL_BIND, MPOL_MF_MOVE) (migration reason
 *             mempolicy_mbind) instead of move_pages(2) (reason syscall)
 *
 * Folios are found with /proc/self/pagemap and /proc/kpageflags (root only);
 * without them every 4K page is passed.  Prints "PASS ..." and exits 0, or
 * "FAIL ..." and exits 1.  Built static on the host, run in the guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MPOL_BIND		2
#define MPOL_MF_MOVE		(1 << 1)
#define KPF_COMPOUND_HEAD	15
#define KPF_COMPOUND_TAIL	16
#define KPF_THP			22
#define PM_PRESENT		(1ULL << 63)
#define PM_PFN_MASK		((1ULL << 55) - 1)

static long page_size;

static void fail(const char *fmt, const char *what, long a, long b)
{
	printf("FAIL %s: ", what);
	printf(fmt, a, b);
	printf("\n");
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t pattern(uint64_t off, uint64_t seed)
{
	uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ULL ^ seed;

	x ^= x >> 29;
	return x * 0xBF58476D1CE4E5B9ULL;
}

/* One address per folio: the heads of compound pages and all small pages */
static long folio_addrs(char *buf, size_t len, void **addrs, long *nr_large,
			long *max_pages)
{
	long nr_pages = len / page_size, i, n = 0, run = 0;
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int kf = open("/proc/kpageflags", O_RDONLY);

	*nr_large = 0;
	*max_pages = 1;
	for (i = 0; i < nr_pages; i++) {
		uint64_t ent = 0, flags = 0, pfn;

		if (pm < 0 || kf < 0 ||
		    pread(pm, &ent, 8, (uintptr_t)(buf + i * page_size) / page_size * 8) != 8 ||
		    !(ent & PM_PRESENT) || !(pfn = ent & PM_PFN_MASK) ||
		    pread(kf, &flags, 8, pfn * 8) != 8) {
			addrs[n++] = buf + i * page_size;
			continue;
		}
		if (flags & (1ULL << KPF_COMPOUND_TAIL)) {
			if (i == 0)	/* tail of a folio starting before buf */
				addrs[n++] = buf;
			if (++run > *max_pages)
				*max_pages = run;
			continue;
		}
		run = 1;
		if (flags & (1ULL << KPF_COMPOUND_HEAD))
			(*nr_large)++;
		addrs[n++] = buf + i * page_size;
	}
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return n;
}

static void check_nodes(char *buf, long nr_pages, int node, void **pages,
			int *status)
{
	long i;

	for (i = 0; i < nr_pages; i++)
		pages[i] = buf + i * page_size;
	if (syscall(SYS_move_pages, 0, nr_pages, pages, NULL, status, 0))
		fail("%ld %ld", "move_pages(query)", errno, 0);
	for (i = 0; i < nr_pages; i++)
		if (status[i] != node)
			fail("page %ld is on node %ld", "placement", i,
			     status[i]);
}

static void check_data(char *buf, size_t len, uint64_t seed)
{
	uint64_t *w = (uint64_t *)buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != pattern(i, seed))
			fail("byte offset %ld (word %ld) differs", "data",
			     (long)(i * 8), (long)i);
}

int main(int argc, char **argv)
{
	long mib = 32, loops = 1, nr_large, max_pages, nr, nr_pages, i, l;
	int from = 0, to = 1, advice = -1, opt;
	uint64_t seed = 0x5eed, *w;
	unsigned long mask;
	double t, total_t = 0;
	size_t len, align = 2UL << 20;
	void **addrs, **pages;
	int *nodes, *status;
	const char *file = NULL;
	char *raw, *buf;
	int fd = -1, use_mbind = 0;

	page_size = sysconf(_SC_PAGESIZE);
	while ((opt = getopt(argc, argv, "s:tTf:n:l:S:F:M")) != -1) {
		switch (opt) {
		case 's': mib = atol(optarg); break;
		case 't': advice = MADV_HUGEPAGE; break;
		case 'T': advice = MADV_NOHUGEPAGE; break;
		case 'f': from = atoi(optarg); break;
		case 'n': to = atoi(optarg); break;
		case 'l': loops = atol(optarg); break;
		case 'S': seed = strtoull(optarg, NULL, 0); break;
		case 'F': file = optarg; break;
		case 'M': use_mbind = 1; break;
		default:
			fprintf(stderr, "usage: %s [-s MiB] [-t|-T] [-f NODE] [-n NODE] [-l LOOPS] [-S SEED]\n",
				argv[0]);
			return 2;
		}
	}
	len = (size_t)mib << 20;
	nr_pages = len / page_size;

	raw = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		fail("%ld %ld", "mmap", errno, 0);
	buf = (char *)(((uintptr_t)raw + align - 1) & ~(align - 1));
	if (file) {
		fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, len))
			fail("%ld %ld", "open/ftruncate", errno, 0);
		if (mmap(buf, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 fd, 0) != buf)
			fail("%ld %ld", "mmap(file)", errno, 0);
	}
	if (advice >= 0 && madvise(buf, len, advice))
		fail("%ld %ld", "madvise", errno, 0);
	mask = 1UL << from;
	if (syscall(SYS_mbind, buf, len, MPOL_BIND, &mask, 64, 0))
		fail("%ld %ld", "mbind", errno, 0);

	w = (uint64_t *)buf;
	for (i = 0; i < (long)(len / 8); i++)
		w[i] = pattern(i, seed);

	addrs = calloc(nr_pages, sizeof(*addrs));
	pages = calloc(nr_pages, sizeof(*pages));
	nodes = calloc(nr_pages, sizeof(*nodes));
	status = calloc(nr_pages, sizeof(*status));
	if (!addrs || !pages || !nodes || !status)
		fail("%ld %ld", "calloc", errno, 0);

	check_nodes(buf, nr_pages, from, pages, status);
	nr = folio_addrs(buf, len, addrs, &nr_large, &max_pages);

	for (l = 0; l < loops; l++) {
		int dst = (l % 2) ? from : to;
		long rc;

		/* The policy must allow the target node, or it moves back */
		mask = (1UL << from) | (1UL << to);
		if (syscall(SYS_mbind, buf, len, MPOL_BIND, &mask, 64, 0))
			fail("%ld %ld", "mbind", errno, 0);
		for (i = 0; i < nr; i++)
			nodes[i] = dst;
		t = now();
		if (use_mbind) {
			/* Bind to the target only: mbind moves what is not there */
			mask = 1UL << dst;
			rc = syscall(SYS_mbind, buf, len, MPOL_BIND, &mask, 64,
				     MPOL_MF_MOVE);
			total_t += now() - t;
			if (rc)
				fail("errno %ld (loop %ld)", "mbind(MPOL_MF_MOVE)",
				     errno, l);
			check_nodes(buf, nr_pages, dst, pages, status);
			check_data(buf, len, seed);
			continue;
		}
		rc = syscall(SYS_move_pages, 0, nr, addrs, nodes, status,
			     MPOL_MF_MOVE);
		total_t += now() - t;
		if (rc < 0)
			fail("errno %ld (loop %ld)", "move_pages", errno, l);
		if (rc > 0)
			fail("%ld folios not migrated (loop %ld)", "move_pages",
			     rc, l);
		for (i = 0; i < nr; i++)
			if (status[i] != dst)
				fail("folio %ld has status %ld", "move_pages",
				     i, status[i]);
		check_nodes(buf, nr_pages, dst, pages, status);
		check_data(buf, len, seed);
	}

	if (file) {
		/* The page cache itself, not only the mapping, must be intact */
		uint64_t v;

		munmap(buf, len);
		for (i = 0; i < (long)(len / 8); i += 4099)
			if (pread(fd, &v, 8, i * 8) != 8 || v != pattern(i, seed))
				fail("word %ld differs (read %ld)", "file data",
				     i, 0);
		close(fd);
		unlink(file);
	}
	printf("PASS %s%s%ld MiB, %ld folios (%ld large, largest %ld pages), %ld move(s) %d->%d, %.9f s in move_pages, %.3f GB/s\n",
	       file ? "file " : "", use_mbind ? "mbind " : "", mib, nr, nr_large, max_pages, loops, from, to, total_t,
	       total_t > 0 ? len * (double)loops / total_t / 1e9 : 0.0);
	return 0;
}
