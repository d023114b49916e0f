from rocklet.model_service.anti_call import main

main()
