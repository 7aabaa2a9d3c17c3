/*
 * The program every layer library is linked into whole, against only the
 * libraries of its LAYER line (CMakeLists.txt): it links only when no code
 * of the layer calls into a layer above.
 */
int main(void)
{
    return 0;
}
