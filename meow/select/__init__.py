"""meow.select"""
