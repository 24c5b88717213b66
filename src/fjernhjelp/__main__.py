from fjernhjelp.cli import main

main()
