/* LD_PRELOAD shim for benchmarks: hides AVX-512 and AMX from CPUID, so libraries that pick their
   kernels from CPUID (ONNX Runtime's MLAS, which has no switch of its own; pytorch's cpuinfo;
   fbgemm) take their AVX2 paths, as on a laptop without AVX-512. Uses Linux CPUID faulting
   (arch_prctl ARCH_SET_CPUID 0; the CPU must support it: "cpuid_fault" in /proc/cpuinfo): each
   CPUID traps to SIGSEGV, the handler runs the real CPUID with faulting briefly off, clears the
   AVX-512/AMX bits and skips the instruction.
   Build: gcc -O2 -shared -fPIC -o cpuid_avx2.so scripts/cpuid_avx2.c
   Use:   LD_PRELOAD=$PWD/cpuid_avx2.so python scripts/bench_decode.py ... */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <asm/prctl.h>
#include <cpuid.h>

static volatile long n_traps = 0;
static int arch_prctl_(int code, unsigned long arg) { return syscall(SYS_arch_prctl, code, arg); }

static void handler(int sig, siginfo_t *si, void *ctx_) {
  ucontext_t *ctx = (ucontext_t *)ctx_;
  unsigned char *ip = (unsigned char *)ctx->uc_mcontext.gregs[REG_RIP];
  if (!(ip[0] == 0x0f && ip[1] == 0xa2)) { signal(SIGSEGV, SIG_DFL); raise(SIGSEGV); return; }
  unsigned int leaf = (unsigned int)ctx->uc_mcontext.gregs[REG_RAX];
  unsigned int sub = (unsigned int)ctx->uc_mcontext.gregs[REG_RCX];
  unsigned int a, b, c, d;
  arch_prctl_(ARCH_SET_CPUID, 1);
  __cpuid_count(leaf, sub, a, b, c, d);
  arch_prctl_(ARCH_SET_CPUID, 0);
  if (leaf == 7 && sub == 0) {
    b &= ~((1u<<16)|(1u<<17)|(1u<<21)|(1u<<26)|(1u<<27)|(1u<<28)|(1u<<30)|(1u<<31));
    c &= ~((1u<<1)|(1u<<6)|(1u<<11)|(1u<<12)|(1u<<14));
    d &= ~((1u<<2)|(1u<<3)|(1u<<8)|(1u<<22)|(1u<<23)|(1u<<24)|(1u<<25));
  } else if (leaf == 7 && sub == 1) {
    a &= ~(1u<<5);  /* avx512_bf16 */
  } else if (leaf == 0xd && sub == 0) {
    a &= ~((1u<<5)|(1u<<6)|(1u<<7)|(1u<<17)|(1u<<18));  /* opmask/ZMM/AMX state */
  }
  ctx->uc_mcontext.gregs[REG_RAX] = a; ctx->uc_mcontext.gregs[REG_RBX] = b;
  ctx->uc_mcontext.gregs[REG_RCX] = c; ctx->uc_mcontext.gregs[REG_RDX] = d;
  ctx->uc_mcontext.gregs[REG_RIP] += 2;
  n_traps++;
}

__attribute__((constructor)) static void init(void) {
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler; sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &sa, NULL);
  if (arch_prctl_(ARCH_SET_CPUID, 0) != 0) { perror("cpuid_avx2: ARCH_SET_CPUID"); _exit(3); }
}
__attribute__((destructor)) static void fini(void) {
  if (getenv("CPUID_AVX2_VERBOSE")) fprintf(stderr, "cpuid_avx2: %ld CPUID calls masked\n", n_traps);
}
long cpuid_avx2_traps(void) { return n_traps; }
