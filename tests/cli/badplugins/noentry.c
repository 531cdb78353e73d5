/* A module that loads but does not export nde_module_entry (the registry
 * must refuse it and say which symbol is missing). */
int nde_test_not_an_entry(void);

int nde_test_not_an_entry(void)
{
    return 0;
}
