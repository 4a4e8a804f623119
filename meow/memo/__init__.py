"""meow.memo"""
