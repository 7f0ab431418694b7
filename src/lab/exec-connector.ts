// The connector of `aplspawn exec` (see enter.ts): the one process of aplspawn's that is ever in a
// container's PID namespace, so it is a program of no host file. x86_64 machine code of our own,
// assembled from CONNECTOR_ASM (test/lab/exec-connector.test.ts assembles it again with GNU as and
// compares); exec-helper.ts wraps it in an ELF header and runs it from a sealed memfd.
//
// It forks. The child (born in the container's PID namespace: systemd takes a connection on its
// private socket only from a peer it can see) connects to /run/systemd/private and sends the socket
// over fd 3 with four bytes: 0, or -errno (then no socket). The parent waits for the child, then exits.

/** The connector's source (GNU as, Intel syntax). */
export const CONNECTOR_ASM = `.intel_syntax noprefix
.globl _start
_start:
    mov eax, 57                 # fork
    syscall
    test rax, rax
    jz child
    mov edi, 1
    js done
    mov rdi, -1                 # wait4(-1, NULL, 0, NULL): the child ends first
    xor esi, esi
    xor edx, edx
    xor r10d, r10d
    mov eax, 61
    syscall
    xor edi, edi
done:
    mov eax, 231                # exit_group
    syscall
child:
    mov edi, 1                  # socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0)
    mov esi, 0x80001
    xor edx, edx
    mov eax, 41
    syscall
    mov r12, rax
    test rax, rax
    js report
    mov rdi, r12                # connect(fd, &address, sizeof address)
    lea rsi, [rip + address]
    mov edx, address_end - address
    mov eax, 42
    syscall
    test rax, rax
    js report
    xor eax, eax
report:                         # eax: 0, or -errno of socket or connect
    sub rsp, 128
    mov [rsp], eax              # the 4 bytes sent
    mov [rsp + 8], rsp          # iovec { base, 4 }
    mov qword ptr [rsp + 16], 4
    mov qword ptr [rsp + 32], 20    # cmsghdr { len 20, SOL_SOCKET, SCM_RIGHTS, fd }
    mov dword ptr [rsp + 40], 1
    mov dword ptr [rsp + 44], 1
    mov [rsp + 48], r12d
    xor ecx, ecx                # msghdr { no name, iov, 1, control, controllen, 0 }
    mov [rsp + 64], rcx
    mov [rsp + 72], rcx
    lea rcx, [rsp + 8]
    mov [rsp + 80], rcx
    mov qword ptr [rsp + 88], 1
    xor ecx, ecx
    xor r8d, r8d
    test eax, eax
    jnz 1f
    lea rcx, [rsp + 32]         # the socket goes along only when connected
    mov r8d, 24
1:
    mov [rsp + 96], rcx
    mov [rsp + 104], r8
    mov qword ptr [rsp + 112], 0
    mov edi, 3                  # sendmsg(3, &msghdr, 0)
    lea rsi, [rsp + 64]
    xor edx, edx
    mov eax, 46
    syscall
    xor edi, edi
    mov eax, 231
    syscall
address:
    .short 1                    # AF_UNIX
    .ascii "/run/systemd/private"
address_end:
`;

/** The connector's machine code (its .text), hex. */
export const CONNECTOR_HEX = [
  "b8390000000f054885c07425bf01000000781748c7c7ffffffff31f631d24531d2b83d0000000f0531ffb8e70000000f",
  "05bf01000000be0100080031d2b8290000000f054989c44885c0781d4c89e7488d35ab000000ba16000000b82a000000",
  "0f054885c0780231c04881ec80000000890424488964240848c74424100400000048c744242014000000c74424280100",
  "0000c744242c01000000448964243031c948894c244048894c2448488d4c240848894c245048c74424580100000031c9",
  "4531c085c0750b488d4c242041b81800000048894c24604c8944246848c744247000000000bf03000000488d74244031",
  "d2b82e0000000f0531ffb8e70000000f0501002f72756e2f73797374656d642f70726976617465",
].join("");
