/* A stand-in for Windows' bcryptprimitives.dll, for running ibackup.exe under Wine only.
 *
 * Rust's standard library (1.78 and later) asks bcryptprimitives.dll for ProcessPrng to seed
 * its hash maps; Wine 8.0 ships no such DLL, so the .exe stops before main (c0000135). This file
 * gives Wine the one function, filled from advapi32's RtlGenRandom (exported as
 * SystemFunction036). Real Windows has the DLL: this is never shipped, only placed next to the
 * .exe by scripts/wine-check.sh.
 *
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a ULONG: hand it large requests in pieces. */
    while (length > 0) {
        ULONG piece = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, piece))
            return FALSE;
        data += piece;
        length -= piece;
    }
    return TRUE;
}
