/* Escape and limit probes run inside test containers. Each prints one line:
 * "<name> ok" when the kernel allowed it, or "<name> <errno name>" when it refused. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int report(const char *name, long rc) {
    if (rc < 0)
        printf("%s %s\n", name, strerrorname_np(errno));
    else
        printf("%s ok\n", name);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: probe escapes|alloc MB|clone3\n");
        return 2;
    }
    if (!strcmp(argv[1], "escapes")) {
        report("mount", mount("tmpfs", "/mnt", "tmpfs", 0, NULL));
        report("init_module", syscall(SYS_init_module, "\0", 1, ""));
        report("finit_module", syscall(SYS_finit_module, 0, "", 0));
        /* Opening for writing is enough to show the path is read-only; nothing is ever
         * written, since core_pattern is not namespaced. */
        int fd = open("/proc/sys/kernel/core_pattern", O_WRONLY);
        report("core_pattern", fd);
        if (fd >= 0)
            close(fd);
        unlink("/tmp/sda");
        long rc = mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0));
        report("mknod_block", rc);
        if (rc == 0)
            report("open_block", open("/tmp/sda", O_RDONLY));
        report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
        report("add_key", syscall(SYS_add_key, "user", "x", "y", 1, -3));
        report("unshare_user", unshare(CLONE_NEWUSER));
        report("unshare_net", unshare(CLONE_NEWNET));
        report("setns", syscall(SYS_setns, 0, 0));
        report("bpf", syscall(SYS_bpf, 0, NULL, 0));
        report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
        report("reboot", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x1234567, NULL));
        report("swapoff", syscall(SYS_swapoff, "/dev/null"));
        int k = open("/proc/kcore", O_RDONLY);
        if (k < 0) {
            report("kcore_open", k);
        } else {
            char buf[64];
            long n = read(k, buf, sizeof buf);
            printf("kcore_read %ld\n", n);
        }
        return 0;
    }
    if (!strcmp(argv[1], "clone3")) {
        report("clone3", syscall(SYS_clone3, NULL, 0));
        return 0;
    }
    if (!strcmp(argv[1], "alloc") && argc > 2) {
        long mb = atol(argv[2]);
        for (long i = 0; i < mb; i++) {
            char *p = malloc(1 << 20);
            if (!p) {
                printf("malloc failed at %ld MiB\n", i);
                return 1;
            }
            memset(p, 1, 1 << 20);
        }
        printf("allocated %ld MiB\n", mb);
        return 0;
    }
    fprintf(stderr, "unknown probe %s\n", argv[1]);
    return 2;
}
